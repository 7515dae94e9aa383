"""Names the flows and their launcher (`make serve`) share, in a module light enough for both."""

from visuels.config import settings

GPU_LIMIT = "gpu"  # global concurrency limit of the pool's GPUs: SLOTS_PER_GPU slots each (visuels.flows.serve)
SLOTS_PER_GPU = 2  # a render chunk holds one (two overlap per GPU); a training run holds all of one GPU's
# The work queue of a sharded render's sub-runs: its own workers serve it, so runs that wait for
# other runs (the nightly, a sharded render) can never take every slot its shards need.
SHARDS_QUEUE = "shards"
# The work queue of review runs: suspended while they wait, started again when answered, by a
# worker with no slot limit (a limited Prefect 3.8 worker crashes on a run it started before).
REVIEWS_QUEUE = "reviews"

# The render deployment (flow name/deployment name): the nightly starts it, `make serve` fills its form.
RENDER_DEPLOYMENT = "render-campaign/render-campaign"


def studio_url(path: str) -> str:
    """A page of the studio (``$VISUELS_STUDIO_URL``, else its default address): what artifacts link to."""
    return f"{settings().studio_url.rstrip('/')}/{path.lstrip('/')}"
