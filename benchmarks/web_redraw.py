"""How fast the browser workstation redraws a slice view when the user scrolls, on this
computer, against a baseline measured in the same process.

- Scroll: the workstation's red view (trame-slicer's slice view on 3D Slicer's MRML, 512x512
  pixels, a 512x512xN CT-like volume with a segment drawn over part of it) moves one slice,
  renders, and its pixels are read back and JPEG-encoded, which is what is streamed to the
  page for each redraw. Median over the scroll, in ms.
- Baseline: a bare VTK view of the same size showing the same slice as an image (no MRML,
  no layers, no segment), with the same read-back and encoding. The ratio is the cost of
  Slicer's slice pipeline over the least a redraw can cost here; it travels between
  machines better than milliseconds do.

The transport to the browser (a websocket on localhost, or the network) is not included.

    python benchmarks/web_redraw.py [--slices 64] [--size 512]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.io.volumes import Geometry, Volume  # noqa: E402
from MedSAMAgentLib.io.writers import write_volume  # noqa: E402

JPEG_QUALITY = 80


def ct_like(size: int, slices: int) -> Volume:
    """Soft tissue in air with noise, 0.7 mm pixels, 2.5 mm slices."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    body = ((x - size / 2) / (0.42 * size)) ** 2 + ((y - size / 2) / (0.35 * size)) ** 2 <= 1
    array = np.where(body, 40.0, -1000.0)[None].repeat(slices, 0) + rng.normal(0, 10, (slices, size, size))
    geometry = Geometry(size=(size, size, slices), spacing=(0.7, 0.7, 2.5), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
    return Volume(array=array.astype(np.int16), geometry=geometry, modality="CT")


def encoded(render_window, image_data) -> bytes:
    """The view's pixels as streamed: read back, then JPEG."""
    from PIL import Image
    from slicer import vtkMRMLLayerDisplayableManager
    from vtkmodules.util.numpy_support import vtk_to_numpy

    vtkMRMLLayerDisplayableManager.RenderWindowBufferToImage(render_window, image_data)
    width, height, _ = image_data.GetDimensions()
    pixels = vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(height, width, -1)[::-1]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels[..., :3])).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def workstation_scroll(volume: Volume, size: int, folder: Path) -> list[float]:
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, NoScheduleRendering, ViewLayoutDefinition
    from vtkmodules.vtkCommonDataModel import vtkImageData

    from MedSAMAgentLib.anatomy import segment_style
    from MedSAMAgentLib.web.workspace import EngineSettings, Workspace

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    view = app.view_manager.create_view(ViewLayoutDefinition.axial_view())
    view.render_window().SetSize(size, size)
    # The page's views render once per frame however many changes asked for it (trame-rca's
    # scheduler); here, once per scroll step, not once per displayable manager's request.
    view.set_scheduled_render(NoScheduleRendering())
    workspace = Workspace(app, EngineSettings())
    workspace.open(write_volume(volume, folder / "scroll.nrrd"), "scroll")
    mask = np.zeros(volume.geometry.array_shape, bool)
    mask[:, size // 3: size // 2, size // 3: size // 2] = True
    workspace.logic.writer.write(workspace.segmentation_node, None, workspace.volume_node, mask, segment_style("liver"))
    image = vtkImageData()
    times = []
    for index in list(range(volume.geometry.size[2])) * 2:
        started = time.perf_counter()
        workspace.show_slice(view, index)
        view.render()
        encoded(view.render_window(), image)
        times.append(time.perf_counter() - started)
    return times


def baseline_scroll(volume: Volume, size: int) -> list[float]:
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderer, vtkRenderWindow

    window, renderer, actor, image = vtkRenderWindow(), vtkRenderer(), vtkImageActor(), vtkImageData()
    window.SetOffScreenRendering(True)
    window.SetSize(size, size)
    window.AddRenderer(renderer)
    renderer.AddActor(actor)
    times, read_back = [], vtkImageData()
    for index in list(range(volume.geometry.size[2])) * 2:
        started = time.perf_counter()
        grey = np.clip((volume.array[index] + 160.0) * (255 / 400), 0, 255).astype(np.uint8)
        image.SetDimensions(size, size, 1)
        image.GetPointData().SetScalars(numpy_to_vtk(grey.ravel(), deep=True))
        actor.SetInputData(image)
        renderer.ResetCamera()
        window.Render()
        encoded(window, read_back)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    volume = ct_like(args.size, args.slices)
    with tempfile.TemporaryDirectory() as folder:
        scroll = workstation_scroll(volume, args.size, Path(folder))[args.slices:]  # the second pass: caches warm
    baseline = baseline_scroll(volume, args.size)[args.slices:]
    ms = statistics.median(scroll) * 1000
    base = statistics.median(baseline) * 1000
    print(f"scroll redraw of a {args.size}x{args.size} slice view: median {ms:.1f} ms (90th percentile "
          f"{np.percentile(scroll, 90) * 1000:.1f} ms) over {len(scroll)} slices")
    print(f"baseline (bare VTK image view, same size, same read-back and JPEG): median {base:.1f} ms; ratio {ms / base:.2f}")


if __name__ == "__main__":
    main()
