"""A MongoDB-protocol server that refuses writes because its disk is full is waited out like an unreachable one: the
runs pause and then go on, each write landing once."""

from __future__ import annotations

from disks import mounted_small_disk
from full_disk_support import runs_wait_out_a_full_disk
from odin_core.model import RunRecord
from odin_core.settings import StoreSettings
from odin_core.store.mongo import MongoStore
from services import launch, unavailable


async def test_a_full_disk_under_the_server_is_waited_out() -> None:
    """FerretDB's databases live on a small real disk (a tmpfs over its data directory) that fills up: it answers
    InternalError "database or disk is full"; before, that reached the engine as an error of the run."""
    try:
        server = launch.FerretDB.start()  # a server of its own: its data directory is the small disk
    except launch.ServiceError as e:
        unavailable(str(e))
    try:
        with mounted_small_disk(server.dir / "sqlite") as disk:
            store = MongoStore(server.url_for("full"), StoreSettings(write_retry_for_s=60))
            try:
                await store.open()
                await store.create_run(RunRecord("first", job="j", owner="me"), {}, [], [], now=0.0)
                made = await runs_wait_out_a_full_disk(store, disk)
                runs = await store.list_runs(limit=len(made) + 10)
                assert sorted(r.run_id for r in runs) == sorted(["first", *made])
            finally:
                await store.close()
    finally:
        server.stop()
