"""`medsam-agent doctor`: every field on one screen, for this machine and for a server
(answers, API version, key: accepted or refused, never printed)."""

from __future__ import annotations

from Testing.fixtures.server import free_port, run_medsam_agent, run_thin_client
from Testing.service.conftest import offline


def lines_of(output: str) -> dict[str, str]:
    """Each finding's label and value (problems marked with '!' first)."""
    found = {}
    for line in output.splitlines():
        if line[:2] in ("  ", "! "):
            label, _, value = line[2:].partition("  ")
            found[label.strip()] = ("! " if line.startswith("!") else "") + value.strip()
    return found


def test_doctor_shows_this_machine(tmp_path):
    from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name, cpu_supports_bf16

    done = run_medsam_agent("doctor", **offline(tmp_path / "home"))
    found = lines_of(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert found["packages"].startswith("medsam-agent-slicer 0.1.0, torch ") and "openvino " in found["packages"]
    assert found["cpu"].startswith(cpu_name())
    assert all(f"{flag} " in found["features"] for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
    assert found["runtime"] == f"auto picks openvino in {'bf16' if cpu_supports_bf16() else 'f32'} on cpu"
    assert found["gpu"].startswith("none (") and found["gpu"].endswith("the models run on the CPU")
    assert found["litemedsam"].startswith("here: ") and found["litemedsam"].endswith("lite_medsam.pth (37.5 MB)")
    assert found["medsam2"] == "missing (about 160 MB, needed for --segmenter medsam2): medsam-agent models fetch medsam2"
    assert found["looked in"].startswith(str(tmp_path / "home" / "hub"))
    assert "writable" in found["model cache"] and found["hub cache"].startswith(f"{tmp_path / 'home' / 'hub'}: writable")
    assert found["hub"] == "offline (HF_HUB_OFFLINE=1): weights come only from this machine's folders"
    assert done.stdout.rstrip().endswith("no problem found")


def test_doctor_checks_the_server_and_its_key_without_showing_it(server, keys):
    right = run_medsam_agent("doctor", "--server", server.url, MEDSAM_AGENT_SERVER_KEY=keys[1]["alice"])
    found = lines_of(right.stdout)
    assert right.returncode == 0, right.stdout
    assert found["answers"] == "yes, medsam-agent 0.1.0" and found["api version"] == "2, as this client"
    assert found["key"] == "accepted" and found["runs"] == "litemedsam (of litemedsam, medsam2) on cpu"
    wrong = run_medsam_agent("doctor", "--server", server.url, MEDSAM_AGENT_SERVER_KEY="not-a-key-" + keys[1]["alice"][:8])
    found = lines_of(wrong.stdout)
    assert wrong.returncode == 1
    assert found["key"].startswith("! refused (a key from $MEDSAM_AGENT_SERVER_KEY)")
    assert wrong.stdout.rstrip().endswith("1 problem found")
    for output in (right.stdout + right.stderr, wrong.stdout + wrong.stderr):
        assert keys[1]["alice"] not in output and keys[1]["alice"][:8] not in output
    nobody = run_medsam_agent("doctor", "--server", f"http://127.0.0.1:{free_port()}")
    assert lines_of(nobody.stdout)["answers"].startswith("! no: cannot reach the MedSAM-Agent server")


def test_doctor_on_a_client_only_install_points_to_a_server():
    done = run_thin_client("doctor")
    found = lines_of(done.stdout)
    assert done.returncode == 0, done.stderr
    assert found["models"] == "not installed here (a client-only install): run them on a server with --server URL"
    assert "torch -" in found["packages"]
