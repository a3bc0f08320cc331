"""One browser session's process: a trame server on localhost (the gateway forwards the
page to it) holding its own MRML scene, views, `Workspace` and page (`SessionActions`).
It exits when its page has been closed for `--idle-exit` seconds, which frees its memory."""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
from pathlib import Path

from ..remote import SERVER_KEY_ENV
from . import gateway_secret
from .data_folder import DataFolder
from .session_actions import SessionActions
from .workspace import EngineSettings, Workspace

FOUR_VIEWS = "red yellow / green 3D"


def four_views() -> dict:
    """Red and yellow above green and 3D, red first in the page (where the box is drawn)."""
    from trame_slicer.views import Layout, LayoutDirection
    from trame_slicer.views import ViewLayoutDefinition as Views

    rows = [Layout(LayoutDirection.Horizontal, pair) for pair in ([Views.axial_view(), Views.sagittal_view()],
                                                                  [Views.coronal_view(), Views.threed_view()])]
    return {FOUR_VIEWS: Layout(LayoutDirection.Vertical, rows)}


def build_session(server, options: argparse.Namespace) -> SessionActions:
    from trame_slicer import module as trame_slicer_module
    from trame_slicer.core import LayoutManager, SlicerApp
    from trame_slicer.rca_view import register_rca_factories

    from .box_drawing import BoxDrawing
    from .page import build_page
    from .point_placing import PointPlacing
    from .segment_tools import SegmentTools

    server.enable_module(trame_slicer_module)
    slicer_app = SlicerApp()
    register_rca_factories(slicer_app.view_manager, server)
    layout_manager = LayoutManager(slicer_app.scene, slicer_app.view_manager, server)
    layout_manager.register_layout_dict(four_views())
    layout_manager.set_layout(FOUR_VIEWS)
    engine = EngineSettings(segmenter=options.segmenter, device=options.device, runtime=options.runtime, policy=options.policy,
                            agent_model=options.agent_model, endpoint_url=options.endpoint, server_url=options.server,
                            server_key=os.environ.get(SERVER_KEY_ENV) or None)
    actions = SessionActions(server, Workspace(slicer_app, engine), DataFolder(options.data), options.output)
    red_view = slicer_app.view_manager.get_view("Red")
    actions.attach_red_view(red_view, BoxDrawing(slicer_app, red_view, actions.on_box), PointPlacing(slicer_app, actions.on_points),
                            SegmentTools(slicer_app, actions.on_edit))
    server.state.trame__title = "MedSAM-Agent"
    build_page(server, actions, layout_manager)
    return actions


def answer_only_the_gateway(server, secret: str) -> None:
    """Refuse every request and websocket that does not carry the gateway's `secret`."""
    check = gateway_secret.only_from_the_gateway(secret)
    server.controller.on_server_bind.add(lambda wslink_server: wslink_server.app.middlewares.append(check))


def load_model_libraries() -> None:
    """Load torch and what it loads (triton, with its own LLVM) before VTK renders through
    Mesa (whose LLVM is another): loaded the other way round, the process crashes."""
    import torchvision.ops  # noqa: F401  (torch, then triton)

    import MedSAMAgentLib.engine.local  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one browser session of medsam-agent web (started by the gateway)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--segmenter", default="litemedsam")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--policy", default="qwen")
    parser.add_argument("--agent-model")
    parser.add_argument("--endpoint")
    parser.add_argument("--server")
    parser.add_argument("--idle-exit", type=int, default=30, help="seconds without a page before the process exits")
    options = parser.parse_args(argv)
    secret = gateway_secret.take_from_environment()
    if secret is None:
        sys.exit(f"a session is started by medsam-agent web, which gives it {gateway_secret.ENVIRONMENT}")
    faulthandler.enable()  # a crash in VTK or a runtime leaves its stack in the workstation's log
    if not options.server:
        load_model_libraries()
    from trame.app import get_server

    server = get_server(client_type="vue3")
    answer_only_the_gateway(server, secret)
    build_session(server, options)
    print("ready", flush=True)
    server.start(host="127.0.0.1", port=options.port, open_browser=False, show_connection_info=False, disable_logging=True,
                 timeout=options.idle_exit)


if __name__ == "__main__":
    main()
