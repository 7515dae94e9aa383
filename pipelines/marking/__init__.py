"""Marking outputs as AI-generated (EU AI Act, Art. 50): watermark, metadata, signature, ledger."""
