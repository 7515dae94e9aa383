"""visuels: per-commune campaign visuals from local diffusion models, held to a brand charter and
marked as AI-generated (EU AI Act, Art. 50).

The library is one package per stage, in layers that import only downwards (``make lint``
checks it, the contract is in pyproject.toml):

    visuels.flows                      Prefect flows and deployments: the only Prefect import
    visuels.cli                        the command line
    visuels.studio                     the designers' web studio
    visuels.review, visuels.training   reviews, reports, verify, retouch; LoRA training
    visuels.engine                     the staged renderer: GPU stage, CPU stage, export, claims
    visuels.planning                   campaigns expanded into jobs with keys; the bias review
    visuels.marking                    watermark, XMP, C2PA, keys, ledger checkpoints
    visuels.models, visuels.postprocess   diffusers pipelines; formats, charter, compliance
    visuels.record                     the database of record: ledger, outputs, migrations
    visuels.inputs                     charters, communes, campaigns, pictures, model references
    visuels._internal, config, errors  helpers, settings, one exception type per domain
"""

__version__ = "0.1.0"
