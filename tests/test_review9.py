"""Review of the file digest made by a thread of its own (d98cf00, cc8c533): a digest is what
tells a file merely touched from a changed one, so it must be the digest of the bytes the run
read. Made by a thread that may run late (a slow disk, a share, several big files before it), it
can be the digest of a file rewritten after the first pass read it."""

from __future__ import annotations

import os
import threading

from etl.run import pipeline
from tests.test_import import NO_ENV, TOKEN
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture


def test_a_file_rewritten_after_the_first_pass_read_it_is_not_taken_for_touched(etl, sandbox, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    """The export is written again (same size, one amount changed) right after the first pass
    read it, before the digest thread got to it (it is late: here, held back). The digest is then
    that of the new file, and the new file, at the check before posting, looks merely touched:
    the run posts the rows as first read (1.5), which the file no longer holds, and keeps them
    under the new file's digest. Before d98cf00 the digest was made before anything was read:
    the run stopped (exit 2), nothing posted."""
    path = tmp_path / "uses.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n11,1.5,Desk\n12,2.5,Room\n")
    released = threading.Event()
    real = pipeline.digest

    def late(p: str) -> str | None:
        if threading.current_thread().name == "digest":
            released.wait(20)  # a digest thread that runs late
        return real(p)

    monkeypatch.setattr(pipeline, "digest", late)
    chunks = pipeline.Inputs.chunks
    calls = []

    def reading(self, *args, **kw):
        calls.append(1)
        for item in chunks(self, *args, **kw):
            yield item
            if len(calls) == 1 and not released.is_set():  # the first pass read the file: it is
                # written again, the same size, one amount changed
                st = os.stat(path)
                path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n11,9.5,Desk\n12,2.5,Room\n")
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
                released.set()

    monkeypatch.setattr(pipeline.Inputs, "chunks", reading)
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
              "--no-check-credits", env=NO_ENV)
    posted = sorted(r["CreditUsed"] for r in sandbox.store.records())
    assert released.is_set()
    assert posted == [], f"posted {posted} from a file that now holds 9.5 and 2.5 (exit {run.code})"
    assert run.code == 2, run.output
    assert "changed while it was being read" in run.err
