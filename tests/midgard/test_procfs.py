"""Process facts read from a /proc tree: a real one (this machine) and a host-like one laid out in a directory."""

from __future__ import annotations

import os
import subprocess
import sys

from midgard import cgroups, procfs

UID = "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
CID = "a" * 64


def test_a_real_process_of_this_machine():
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "up\n"  # the interpreter runs: its /proc entry is complete
        facts = procfs.facts(child.pid)
        assert facts.name == sys.executable
        with open(f"/proc/{child.pid}/cgroup") as f:
            real = cgroups.parse(f.read())
        assert (facts.pod_uid, facts.container_id) == (real.pod_uid, real.container_id)
    finally:
        child.stdin.close()
        child.wait()


def test_a_host_proc_mount_with_a_pod_process(tmp_path):
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
        f"cri-containerd-{CID}.scope\n"
    )
    (proc / "4242" / "cmdline").write_bytes(b"/opt/conda/bin/python\x00train.py\x00--epochs\x003\x00")
    (proc / "77").mkdir()
    (proc / "77" / "cgroup").write_text("0::/system.slice/sshd.service\n")
    (proc / "77" / "comm").write_text("kworker\n")  # kernel threads have an empty cmdline
    (proc / "77" / "cmdline").write_bytes(b"")
    facts = procfs.facts_of([4242, 77, 999999, -1], proc)
    assert facts[4242] == procfs.ProcFacts("/opt/conda/bin/python", UID, CID)
    assert facts[77] == procfs.ProcFacts("kworker", "", "")
    assert facts[999999] == procfs.ProcFacts() and facts[-1] == procfs.ProcFacts()


def test_an_oversized_cgroup_file_is_cut_not_read_whole(tmp_path):
    pid = tmp_path / str(os.getpid())
    pid.mkdir()
    (pid / "cgroup").write_text("0::/" + "x" * (procfs.MAX_READ * 4))
    assert procfs.facts(os.getpid(), tmp_path).pod_uid == ""
