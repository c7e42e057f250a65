"""LivePortrait's runtime half: the keypoint kinematics (rotation, expression offsets, stitching inputs) shared by
the served python stages (`stages.py`) and the PyTorch reference in `export/liveportrait/` (which imports it from
here: the build side reads the runtime, never the other way). Importing it needs numpy only."""
