#!/usr/bin/env python3
"""Tests of tuning/check and tuning/apply, run by .ci/run (as root, as CI is).

- check prints one line per setting with its status, current and recommended
  value, and exits 1 exactly when some line says CHANGE;
- apply --dry-run changes nothing; apply sets every runtime setting check
  flagged, after which check flags none of them; apply --undo puts every file
  back as it was, byte for byte, and removes the undo file;
- apply refuses without root (exit 2, saying so), and both refuse off Linux;
- herd.service passes `systemd-analyze verify` (with ExecStart pointing at the
  built binary), where systemd is installed.
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import settings  # noqa: E402


def run(*args, user=None):
    cmd = [sys.executable, os.path.join(HERE, args[0]), *args[1:]]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def snapshot():
    """Every settings file's raw contents."""
    out = {}
    for s in settings.SETTINGS:
        for f in s.files(HERE):
            with open(f) as fh:
                out[f] = fh.read()
    return out


def check_lines():
    code, out, err = run("check", "--data-log-dir", HERE)
    lines = out.splitlines()
    assert len(lines) == len(settings.SETTINGS) + 1, out
    for line, s in zip(lines, settings.SETTINGS):
        status = line.split()[0]
        assert status in ("ok", "CHANGE", "n/a", "info"), line
        assert s.name in line, (s.name, line)
        if status in ("ok", "CHANGE"):
            assert f"recommended {s.want}" in line, line
    assert code == (1 if any(l.startswith("CHANGE") for l in lines) else 0), (code, out, err)
    return lines


def verify_unit():
    if not shutil.which("systemd-analyze"):
        print("systemd-analyze not installed: herd.service not verified")
        return
    herd = os.path.join(os.path.dirname(HERE), "target", "release", "herd")
    assert os.path.exists(herd), f"{herd}: build it first"
    with open(os.path.join(HERE, "herd.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/local/bin/herd --config /etc/herd/zoo.cfg\n" in unit
    d = tempfile.mkdtemp(prefix="herd-unit.")
    path = os.path.join(d, "herd.service")
    with open(path, "w") as f:
        f.write(unit.replace("/usr/local/bin/herd", herd))
    p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "herd.service" not in p.stderr, (p.returncode, p.stderr)
    shutil.rmtree(d)


def main():
    before = snapshot()
    lines = check_lines()
    flagged = [s for s, l in zip(settings.SETTINGS, lines) if l.startswith("CHANGE") and s.runtime]

    undo = os.path.join(tempfile.mkdtemp(prefix="herd-tuning-test."), "undo.json")
    code, out, _ = run("apply", "--dry-run", "--data-log-dir", HERE, "--undo-file", undo)
    assert code == 0, out
    assert all(line.startswith("would set ") for line in out.splitlines()), out
    for s in flagged:
        assert s.name in out, (s.name, out)
    assert snapshot() == before, "a dry run changed something"
    assert not os.path.exists(undo)

    try:
        code, out, err = run("apply", "--data-log-dir", HERE, "--undo-file", undo)
        assert code == 0, (out, err)
        if flagged:
            assert os.path.exists(undo), out
            for s in flagged:
                assert s.name in out, (s.name, out)
        after = check_lines()
        for s, l in zip(settings.SETTINGS, after):
            if s.runtime and s.files(HERE):
                assert not l.startswith("CHANGE"), f"apply left {l}"
    finally:
        code, out, err = run("apply", "--undo", "--undo-file", undo)
    assert code == 0, (out, err)
    assert snapshot() == before, "undo did not restore every file"
    assert not os.path.exists(undo)

    code, out, err = run("apply", "--data-log-dir", HERE, user=65534)
    assert code == 2 and "run it as root" in err, (code, out, err)
    assert snapshot() == before

    real = platform.system
    platform.system = lambda: "Darwin"
    try:
        settings.refuse_unless_linux()
        raise AssertionError("did not refuse off Linux")
    except SystemExit as e:
        assert "Linux" in str(e) and "Darwin" in str(e), e
    finally:
        platform.system = real
    verify_unit()
    print(f"tuning kit: check, apply, undo and refusals pass ({len(flagged)} settings "
          "applied and restored)")


if __name__ == "__main__":
    main()
