"""Post-processing: from a generated picture to a charter-conforming output format.

Bump ``POSTPROCESS_VERSION`` whenever a change here alters output pixels: it is part of every
job key, so outputs made by older code get re-rendered.
"""

POSTPROCESS_VERSION = "4"  # 4: call to action under the headline; 3: typographic apostrophes
