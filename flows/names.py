"""Names the flows and their launcher (`make serve`) share, in a module light enough for both."""

GPU_LIMIT = "gpu"  # global concurrency limit held by render chunks: two slots per GPU (flows.serve)
