"""The browser workstation (`medsam-agent web`): the Slicer module's logic
(`MedSAMAgentLogic.SegmentationLogic`) behind a web page, with slice and 3D views rendered
by trame-slicer on this computer and streamed to the browser.

Layers, one concern each:
- `gateway`: the address people open; asks for a key when there are keys, gives each
  browser session its own process and forwards the page and its websocket to it;
- `session_app`: one browser session's process (a trame server on localhost): the page
  (`page`), its actions, the scene (`workspace`), box drawing on the red view
  (`box_drawing`) and the files it may open (`data_folder`).

Nothing is imported here: `medsam-agent` must start without trame, VTK or torch.
"""
