"""The page: a panel of controls beside the red, yellow, green and 3D views. Every control
is bound to the session's state; what the session has done (a volume opened, a prompt
placed, an edit, a run's end, a file saved, an error) is also written into `data-*`
attributes and element texts, which is what the browser tests wait on."""

from __future__ import annotations

from trame.ui.vuetify3 import VAppLayout
from trame.widgets import html
from trame.widgets import vuetify3 as v

from .object_slices import ENDS

UPLOAD_SUFFIXES = ".nii,.nii.gz,.gz,.nrrd,.nhdr,.raw,.mha,.mhd,.zraw,.dcm"


def build_page(server, actions, layout_manager) -> VAppLayout:
    """`actions`: the session's handlers (`session_actions.SessionActions`)."""
    upload = server.trigger_name(actions.receive_upload)
    with VAppLayout(server, full_height=True) as page:
        page.root.theme = "dark"
        with html.Div(style="display: flex; height: 100vh;"):
            # The panel scrolls when its controls outgrow the window; inside it, they keep their height.
            with html.Div(style="width: 340px; flex: none; overflow-y: auto;"), html.Div(classes="d-flex flex-column ga-2 pa-2"):
                html.H3("MedSAM-Agent")
                _volume_controls(upload, actions)
                _prompt_controls(actions)
                _edit_controls()
                _run_controls(actions.runs)
                _save_controls(actions.saving)
                _messages()
                _agent_turns()
            with html.Div(style="flex: 1; display: flex; position: relative;"):
                layout_manager.initialize_layout_grid(page)
    return page


def _volume_controls(upload_trigger: str, actions) -> None:
    with html.Div(classes="d-flex ga-1 align-center"):
        with html.Select(v_model=("volume_choice", None), id="volume-choice", disabled=("volumes.length === 0",),
                         style="flex: 1; color: inherit; background: #333; padding: 4px;"):
            html.Option("{{ volumes.length ? 'a volume in the data folder' : 'no data folder' }}", value="", disabled=True)
            html.Option("{{ entry }}", v_for="entry in volumes", key="entry", value=("entry",))
        v.VBtn("Open", click=actions.open_chosen, id="open-volume", disabled=("!volume_choice || busy",), size="small")
    html.Input(
        type="file", id="upload", accept=UPLOAD_SUFFIXES, multiple=True, disabled=("busy",),
        change=(
            "busy = true; window.load_files_by_chunks($event.target.files, "
            f"{{ trigger_name: '{upload_trigger}' }}).finally(() => {{ $event.target.value = ''; }})"
        ),
    )
    html.Div("{{ volume_name || 'no volume open' }}", id="volume-name",
             raw_attrs=[':data-serial="volume_serial"', ':data-segments="segment_count"', ':data-dicom="is_dicom"'])
    with html.Div(classes="d-flex ga-1 align-center"):
        html.Span("Red slice")
        v.VSlider(v_model=("red_slice", 0), min=0, max=("red_slice_max", 0), step=1, hide_details=True, density="compact",
                  disabled=("!volume_name",))
        html.Input(type="number", id="red-slice", v_model=("red_slice", 0), style="width: 56px; color: inherit;",
                   disabled=("!volume_name",), raw_attrs=[':data-shown="red_shown"'])


def _prompt_controls(actions) -> None:
    v.VTextarea(label="Targets (one per line; the agent places the prompts)", v_model=("targets", ""), rows=2, no_resize=True,
                hide_details=True, density="compact", id="targets")
    v.VTextField(label="Segment name (for a box or points)", v_model=("segment_name", ""), hide_details=True, density="compact",
                 id="segment-name")
    with html.Div(classes="d-flex ga-1 align-center flex-wrap"):
        with v.VBtnToggle(v_model=("placing", None), density="compact", id="placing", disabled=("!volume_name || busy",),
                          raw_attrs=[':data-placing="placing_on"']):
            v.VBtn("Box", value="box", id="draw-box", size="small")
            v.VBtn("+ point", value="positive", id="positive-point", size="small")
            v.VBtn("- point", value="negative", id="negative-point", size="small")
        v.VBtn("Clear", click=actions.clear_prompts, id="clear-prompts", size="small", disabled=("!box_text && !points_text && !range_text",))
    html.Div("{{ box_text || 'no box' }}", id="box", raw_attrs=[':data-serial="box_serial"'])
    html.Div("{{ points_text || 'no points' }}", id="points", raw_attrs=[':data-serial="points_serial"'])
    with html.Div(classes="d-flex ga-1 align-center flex-wrap"):
        html.Span("Object's slices", title="scroll to each end of the object; without them the run finds the ends")
        for end in ENDS:
            v.VBtn(f"{end.capitalize()} here", click=(actions.object_end_here, f"['{end}']"), id=f"range-{end}", size="small",
                   disabled=("!volume_name || busy",))
    html.Div("{{ range_text || 'ends found by the run' }}", id="range", raw_attrs=[':data-serial="range_serial"'])
    html.Div(id="red-geometry", style="display: none;", raw_attrs=[':data-geometry="red_geometry"'])


def _edit_controls() -> None:
    with v.VBtnToggle(v_model=("tool", None), density="compact", id="tool", raw_attrs=[':data-tool="tool_on"', ':data-serial="edit_serial"']):
        v.VBtn("Brush", value="paint", id="brush", size="small", disabled=("busy || !volume_name",))
        v.VBtn("Eraser", value="erase", id="eraser", size="small", disabled=("busy || !segment_count",))
        v.VBtn("Scissors", value="scissors", id="scissors", size="small", disabled=("busy || !segment_count",))


def _run_controls(runs) -> None:
    with html.Div(classes="d-flex ga-1 flex-wrap"):
        v.VBtn("Segment", click=runs.segment, id="segment", color="primary", size="small", disabled=("busy || !volume_name",))
        v.VBtn("Propagate", click=runs.propagate, id="propagate", size="small", disabled=("busy || !segment_count",))
        v.VBtn("Cancel", click=runs.cancel, id="cancel", size="small", disabled=("run_state !== 'running'",))
        v.VBtn("Re-run from my edits", click=runs.rerun, id="rerun", size="small", disabled=("busy || !segment_count",))
        v.VBtn("Undo last run", click=runs.undo, id="undo", size="small", disabled=("busy || !segment_count",))
    v.VProgressLinear(model_value=("progress", 0), height=8, color="primary", id="progress",
                      indeterminate=("run_state === 'running' && progress === 0",))
    html.Div("{{ progress_text }}", id="progress-text", raw_attrs=[':data-run="run_state"', ':data-run-serial="run_serial"'])
    html.Div("{{ summary }}", id="summary")


def _save_controls(saving) -> None:
    with html.Div(classes="d-flex ga-1 flex-wrap"):
        v.VBtn("Save .seg.nrrd", click=saving.save_seg_nrrd, id="save", size="small", disabled=("busy || !segment_count",))
        v.VBtn("Save DICOM SEG", click=saving.save_dicom_seg, id="save-dicom", size="small",
               disabled=("busy || !segment_count || !is_dicom",))
        v.VBtn("Save agent record", click=saving.save_record, id="save-record", size="small", disabled=("busy || !turns.length",))
        v.VBtn("Download", id="download", size="small", disabled=("!saved_name",),
               click=f"utils.download(saved_name, trigger('{saving.server.trigger_name(saving.download)}'), "
                     "'application/octet-stream')")
    html.Div("{{ saved_name }}", id="saved", raw_attrs=[':data-path="saved_path"', ':data-serial="saved_serial"'])


def _messages() -> None:
    html.Div("{{ message }}", id="message", style=("message_kind === 'error' ? 'color: #ff6b6b' : ''",),
             raw_attrs=[':data-kind="message_kind"', ':data-serial="message_serial"'])


def _agent_turns() -> None:
    """The agent's record of the last typed-target run: a line per run and per turn, each
    turn with the picture the agent saw (its answer as the tooltip)."""
    with (html.Div(id="turns", classes="d-flex flex-column ga-1", raw_attrs=[':data-count="turns.length"']),
          html.Div(v_for="(line, index) in turns", key="index", classes="turn d-flex ga-1 align-center", title=("line.tooltip",))):
            html.Img(v_if="line.picture", src=("line.picture",), classes="turn-picture", style="width: 64px; height: 64px;")
            html.Span("{{ line.text }}", style="white-space: pre; font-size: 12px;")
