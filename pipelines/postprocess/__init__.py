"""Post-processing: from a generated picture to a charter-conforming output format (resize, palette,
label, logo, texts), its compliance assessment and its style signature.

Bump ``POSTPROCESS_VERSION`` whenever a change here alters output pixels: it is part of every
job key, so outputs made by older code get re-rendered.
"""

POSTPROCESS_VERSION = "6"  # 6: OpenCV resampling; 5: label plates fit "générée" and "modifiée"; 4: call to action

__all__ = ["POSTPROCESS_VERSION"]  # the stages import what they use from its modules: chain, compliance...
