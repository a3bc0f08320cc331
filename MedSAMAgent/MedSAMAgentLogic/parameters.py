"""The module's settings (its parameter node) as a `SegmentationJob`.

Kept apart from the widget so that what a click on Segment, Propagate or Re-run asks the
engine to do is tested headless.
"""

from __future__ import annotations

LOCAL_MODEL, ENDPOINT, NO_AGENT = "local model", "endpoint", "no agent (my prompts)"
AGENT_SOURCES = (LOCAL_MODEL, ENDPOINT, NO_AGENT)
THIS_COMPUTER, A_SERVER = "this computer", "a server"
RUN_ON = (THIS_COMPUTER, A_SERVER)


def job_from_parameters(parameters, scene, api_key: str | None, mode: str, server_key: str | None = None):
    """The job for `mode` ("segment", "propagate" or "rerun") from the module's parameters
    (the fields of `MedSAMAgentParameterNode`) and the scene's slice view they name.

    Segment uses the agent unless the agent source is NO_AGENT; then the ROI and point
    lists are the prompts. The key slice is the one the view shows, except when the agent
    is asked to find it. On a server, the server's models and agent are used (the local
    model settings do not apply) with `server_key`.
    """
    from MedSAMAgentLib.errors import PromptError

    from .scene_inputs import placed_points, roi_corners, slice_shown
    from .segmentation_logic import SEGMENT, SegmentationJob

    if not parameters.inputVolume:
        raise PromptError("select an input volume")
    on_server = parameters.runOn == A_SERVER
    if on_server and not parameters.serverUrl.strip():
        raise PromptError("type the MedSAM-Agent server's URL, or run on this computer")
    slice_node = scene.GetSingletonNode(parameters.keySliceView, "vtkMRMLSliceNode")
    if slice_node is None:
        raise PromptError(f"there is no {parameters.keySliceView} slice view; choose a view the layout shows")
    view, shown_slice = slice_shown(parameters.inputVolume, slice_node)
    target = parameters.target.strip()
    use_agent = mode == SEGMENT and parameters.agentSource != NO_AGENT
    if use_agent and not target:
        raise PromptError(f"type a target, or choose '{NO_AGENT}' and place an ROI or points")
    find_slice = use_agent and parameters.findSlice
    job = SegmentationJob(
        target=target if use_agent else "",
        view=view,
        key_slice=None if find_slice else shown_slice,
        find_slice=find_slice,
        window=None if parameters.window == "auto" else parameters.window,
        segmenter=parameters.segmenter,
        checkpoint=parameters.checkpoint or None,
        device=parameters.device,
        policy="endpoint" if parameters.agentSource == ENDPOINT else "qwen",
        agent_model=parameters.agentModel or None,
        endpoint_url=parameters.endpointUrl or None,
        api_key=api_key or None,
        server_url=parameters.serverUrl.strip() if on_server else None,
        server_key=(server_key or None) if on_server else None,
        recheck_every=parameters.recheck or None,
        segment_name=target or None,
    )
    if mode == SEGMENT and not use_agent:
        job.box_ras = roi_corners(parameters.promptBox)
        job.points_ras = placed_points(parameters.positivePoints, True) + placed_points(parameters.negativePoints, False)
        if job.box_ras is None and not job.points_ras:
            raise PromptError("place an ROI or points on the key slice, or choose an agent and type a target")
    return job
