"""GUI-free logic of the MedSAMAgent Slicer module: MRML nodes in, engine runs, segments
out with undo, masking and edit tracking. Imports `slicer` (MRML) but never Qt, so it runs
headless (slicer-core) as well as inside the Slicer application.

Nothing is imported here, so that the dependency check (`dependencies`) and the settings
(`parameters`) load before the engine's own dependencies are installed.
"""
