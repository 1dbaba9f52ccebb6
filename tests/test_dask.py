"""fastlayers models on a Dask cluster of worker processes (docs/scaling.md): a large array
predicted chunk by chunk on the workers gives the very bits of a local ``model.predict``.

Two patterns: ``dask.array.map_blocks`` with a model's bound ``predict`` (the model travels
pickled inside the task graph), and ``client.map`` over chunks with a model loaded from a
committed Keras file on the workers themselves. Each worker runs fastlayers on one thread,
with no fastlayers setting: Dask's nanny sets ``OMP_NUM_THREADS=1`` in its workers and
fastlayers follows it (docs/scaling.md); the test checks that too.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import Input, Model
from fastlayers.layers import LSTM, Dense

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

MODELS = Path(__file__).parent / "golden" / "models"
# (file, one input row's shape): a conv net, and an LSTM with several outputs.
KERAS_FILES = [("conv_sequential.keras", (9, 9, 2)), ("seed_lstm.keras", (5, 2))]


@pytest.fixture(scope="module")
def client():
    env = {}
    # The workers import fastlayers from where this process does (a source checkout run
    # with PYTHONPATH=src, or the installed package).
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        env=env,
        silence_logs=40,  # logging.ERROR
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _lstm_model(seed: int = 0) -> Model:
    """A functional model: LSTM(16) over (T=12, F=8) sequences, then a softmax Dense(4)."""
    inp = Input(shape=(12, 8))
    out = Dense(4, activation="softmax")(LSTM(16)(inp))
    model = Model(inputs=inp, outputs=out)
    rng = np.random.default_rng(seed)
    model.set_weights(
        [(rng.standard_normal(w.shape) * 0.3).astype(np.float32) for w in model.get_weights()]
    )
    return model


def _assert_held_by_workers(client, who_has) -> None:
    """Every result key is held by one of the cluster's worker processes."""
    workers = set(client.scheduler_info()["workers"])
    assert who_has and all(holders and set(holders) <= workers for holders in who_has.values())


def test_workers_are_separate_processes_on_one_thread(client):
    info = client.run(lambda: (os.getpid(), fl.get_num_threads()))
    assert len(info) == 2
    pids = {pid for pid, _ in info.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {threads for _, threads in info.values()} == {1}


def test_map_blocks_matches_local_predict_bitwise(client):
    model = _lstm_model()
    x = np.random.default_rng(1).standard_normal((6000, 12, 8)).astype(np.float32)
    expected = model.predict(x)  # here, on this process's default threads
    # Chunks of 700 rows (not a multiple of predict's batch of 32, and a ragged last one).
    dx = da.from_array(x, chunks=(700, 12, 8))
    dy = dx.map_blocks(
        model.predict, drop_axis=2, chunks=(dx.chunks[0], (4,)), dtype=np.float32
    )
    dy = dy.persist()
    distributed.wait(dy)
    _assert_held_by_workers(client, client.who_has(dy))
    got = dy.compute()
    assert got.dtype == np.float32 and got.shape == expected.shape == (6000, 4)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("name, row", KERAS_FILES)
def test_client_map_with_a_keras_file_loaded_on_the_workers(client, name, row):
    pytest.importorskip("h5py")
    path = str(MODELS / name)
    x = np.random.default_rng(2).standard_normal((3000, *row)).astype(np.float32)
    local = fl.load_model(path)
    expected = local.predict(x)
    # A worker loads the file; the chunks are scattered, then predicted where they are (the
    # model moves to the other worker).
    model_future = client.submit(fl.load_model, path, pure=False)
    chunk_futures = client.scatter(np.array_split(x, 7))
    parts = client.map(
        type(local).predict, [model_future] * len(chunk_futures), chunk_futures, pure=False
    )
    distributed.wait(parts, timeout=120)  # a worker that cannot unpickle the model: no hang
    _assert_held_by_workers(client, client.who_has(parts))
    got = client.gather(parts)
    if isinstance(expected, list):  # several outputs: each joined over the chunks
        got = [np.concatenate([part[i] for part in got]) for i in range(len(expected))]
    else:
        got, expected = [np.concatenate(got)], [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.shape[0] == 3000
        assert np.array_equal(g, e)


def test_a_model_moved_between_workers(client):
    """docs/scaling.md's LSTM model made on one worker and used on both: Dask sends its
    weights in pickle's out-of-band buffers, which may arrive unaligned; the packed LSTM
    gates refused those until layers copied them on unpickling (the gather then hung)."""
    model = _lstm_model()
    x = np.random.default_rng(3).standard_normal((3000, 12, 8)).astype(np.float32)
    expected = model.predict(x)
    model_future = client.submit(pickle.loads, pickle.dumps(model), pure=False)
    chunk_futures = client.scatter(np.array_split(x, 10))
    parts = client.map(type(model).predict, [model_future] * len(chunk_futures), chunk_futures,
                       pure=False)
    distributed.wait(parts, timeout=120)
    _assert_held_by_workers(client, client.who_has(parts))
    assert np.array_equal(np.concatenate(client.gather(parts)), expected)


def test_thread_setting_reaches_workers_through_pre_spawn_environ():
    """docs/scaling.md §3's way to set the workers' fastlayers threads: Dask's
    ``distributed.nanny.pre-spawn-environ`` (in place before a worker imports anything;
    ``LocalCluster(env=...)`` came after a script's top-level import of fastlayers, too late
    for a variable read at import; an audit)."""
    import dask

    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    saved = dict(os.environ)  # (the nanny sets the variable in this process's environment)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.FASTLAYERS_NUM_THREADS":
                              "2"}):
            with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                                          dashboard_address=None, env=env,
                                          silence_logs=40) as cluster, \
                    distributed.Client(cluster) as c:
                assert set(c.run(fl.get_num_threads).values()) == {2}
    finally:
        os.environ.clear()
        os.environ.update(saved)
