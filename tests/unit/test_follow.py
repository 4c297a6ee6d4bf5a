"""The follower's state file and command line (publishing is tested on the broker:
``tests/integration/test_follow_files.py``)."""

import os

import orjson
import pytest

from streams.commands.follow import OffsetStore, locked_store, offsets_file
from streams.errors import DistillError
from streams.settings import DistillSettings


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state" / "follower.json"


def test_offsets_file_is_one_per_prefix_and_paths(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    settings = DistillSettings(data_dir=tmp_path / "data", topic_prefix="x.")
    one = offsets_file(settings, {"evidence": [a], "scored-runs": [b]})
    assert one.parent == tmp_path / "data" / "ingest-offsets" and one.suffix == ".json"
    assert one == offsets_file(settings, {"evidence": [a, a], "scored-runs": [tmp_path / "." / "b"]})
    assert one != offsets_file(settings, {"evidence": [b], "scored-runs": [a]})
    assert one != offsets_file(DistillSettings(data_dir=tmp_path / "data", topic_prefix="y."), {"evidence": [a], "scored-runs": [b]})


def test_one_follower_per_state_file(state):
    with locked_store(state):
        with pytest.raises(DistillError, match="already|another"):
            with locked_store(state):
                pass
    with locked_store(state) as store:
        assert store.cursors == {}


def test_an_unreadable_state_file_says_what_to_do(state):
    state.parent.mkdir(parents=True)
    state.write_bytes(b"{not json")
    with pytest.raises(DistillError, match="Operator action"):
        OffsetStore.load(state)


def test_the_state_file_is_replaced_atomically(state):
    store = OffsetStore(state, positions={"t:0": 3})
    store.save()
    inode = os.stat(state).st_ino
    store.positions["t:0"] = 4
    store.save()
    assert orjson.loads(state.read_bytes())["positions"] == {"t:0": 4}
    assert os.stat(state).st_ino != inode and not list(state.parent.glob(".*tmp"))


def test_the_command_refuses_paths_that_do_not_exist(tmp_path):
    from click.testing import CliRunner

    from streams.cli import main

    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "ingest", "--follow", "--evidence", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    result = CliRunner().invoke(main, ["ingest", "--follow"])
    assert result.exit_code == 2 and "nothing to ingest" in result.output
