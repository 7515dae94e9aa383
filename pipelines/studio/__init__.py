"""The designers' studio: a local web app to review runs by looking, retouch outputs and finalize edited files."""
