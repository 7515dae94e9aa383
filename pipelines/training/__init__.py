"""LoRA training on a charter's reference images: dataset, training loop, export of the weights."""
