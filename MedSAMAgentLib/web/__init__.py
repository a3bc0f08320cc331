"""The browser workstation (`medsam-agent web`): the Slicer module's logic
(`MedSAMAgentLogic.SegmentationLogic`) behind a web page, with slice and 3D views rendered
by trame-slicer on this computer and streamed to the browser.

Layers, one concern each, each importing only those below it:
- `gateway`: the address people open; asks for a key when there are keys, gives each
  browser session its own process (`sessions`) and forwards the page and its websocket
  to it, with the secret that process alone answers (`gateway_secret`);
- `session_app`: one browser session's process (a trame server on localhost): builds the
  page (`page`) and its handlers (`session_actions`, with `run_actions` and
  `save_actions`);
- below them: the scene and the logic's runs (`workspace`), what draws on the red view
  (`box_drawing`, `point_placing`, `segment_tools`), the files a session may open
  (`data_folder`, `uploads`) and how the page is told what happened (`page_state`).

Nothing is imported here: `medsam-agent` must start without trame, VTK or torch.
"""
