"""Pure parts of adapters.process: plain-word explanations and the output cap."""

from __future__ import annotations

from azlin_lifecycle.adapters.process import ProcessResult, _Capture, explain


def test_explain_return_codes() -> None:
    assert explain(0) == "exited with status 0"
    assert explain(3) == "exited with status 3"
    assert explain(127) == "not found or not executable (exit 127)"
    assert explain(126) == "found but could not be executed (exit 126)"
    assert explain(-9) == "killed by signal 9 (SIGKILL)"
    assert explain(-15) == "killed by signal 15 (SIGTERM)"
    assert explain(-200) == "killed by signal 200"
    assert explain(None) == "did not finish"


def test_capture_keeps_the_first_bytes_and_counts_the_rest() -> None:
    cap = _Capture(5)
    for chunk in (b"abc", b"defg", b"hij"):
        cap.add(chunk)
    assert (bytes(cap.data), cap.discarded) == (b"abcde", 5)
    cap = _Capture(4)
    cap.add("é€".encode())  # cut inside a character: replaced, not an error
    assert cap.text().startswith("é")


def test_ok_needs_status_zero_and_no_timeout() -> None:
    def result(code: int, timed_out: bool, stopped: bool = False) -> ProcessResult:
        return ProcessResult(("x",), code, "", "", 0.0, timed_out, False, "", stopped)

    assert result(0, False).ok
    assert not result(0, True).ok
    assert not result(-15, False, stopped=True).ok
    assert not result(1, False).ok
