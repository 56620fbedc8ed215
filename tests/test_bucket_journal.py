"""A study that lives in the bucket: Optuna workers on several "machines" (process groups with
caches of their own) share one study through `BucketJournalBackend`, on moto's S3 server and
the GCS emulator, with a worker killed mid-append, a worker joining from a snapshot, and the
fault proxy losing the answers to creates."""

import json

import optuna
import pytest
from conftest import empty_store
from journal_workers import STUDY, join_all, start_workers, told_by
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from mlbackup import ConfigError, backup, layout, open_target
from mlbackup.doctor import run_doctor
from mlbackup.integrations.optuna import BucketJournalBackend
from mlbackup.testing.fault_proxy import S3_SLOW_DOWN, FaultProxy, gcs_error

optuna.logging.set_verbosity(optuna.logging.WARNING)

WORKERS_PER_MACHINE = 4
TRIALS_PER_WORKER = 50


def new_study(url, options):
    storage = JournalStorage(BucketJournalBackend(open_target(url, **options), name=STUDY))
    optuna.create_study(study_name=STUDY, storage=storage)


def replayed(url, options):
    """The study as a worker with no cache and no snapshot replays it from the log."""
    backend = BucketJournalBackend(open_target(url, **options), name=STUDY)
    backend.load_snapshot = lambda: None  # replay every segment
    return optuna.load_study(study_name=STUDY, storage=JournalStorage(backend))


def assert_replay_holds_what_was_told(study, told):
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    assert len(numbers) == len(set(numbers)), "two trials got one number"
    assert sorted(t._trial_id for t in by_number.values()) == list(range(len(numbers)))
    assert len({t["number"] for t in told}) == len(told), "two workers told one trial"
    for entry in told:
        trial = by_number[entry["number"]]
        assert trial.state == TrialState.COMPLETE
        assert (trial.params, trial.value) == (entry["params"], entry["value"])


def segment_tokens(url, options):
    target = open_target(url, **options)
    prefix = f"{layout.journal_prefix(STUDY)}/log"
    keys = target.backend.list_dir(prefix)
    return [json.loads(target.backend.read_bytes(f"{prefix}/{k}"))["token"] for k in keys]


@pytest.mark.slow(seconds=180)
@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_eight_workers_on_two_machines_run_one_study_and_lose_nothing(
    request, kind, tmp_path, figures
):
    url, options = empty_store(request, kind, tmp_path)
    new_study(url, options)
    specs = [
        (url, options, str(tmp_path / f"cache-{machine}"), TRIALS_PER_WORKER, out, None)
        for machine in "ab"
        for out in (str(tmp_path / f"{machine}{i}.json") for i in range(WORKERS_PER_MACHINE))
    ]
    # A ninth worker dies right after its 12th create landed, before append_logs returns.
    crashed = str(tmp_path / "crashed.json")
    crash_spec = (url, options, str(tmp_path / "cache-a"), TRIALS_PER_WORKER, crashed)
    procs = start_workers([*specs, (*crash_spec, "journal-after-create:12")])
    exits = join_all(procs)
    assert exits == [0] * len(specs) + [-9], exits

    told = [t for spec in specs for t in told_by(spec[4])[0]]
    told_by_crashed = told_by(crashed)[0]
    assert len(told) == len(specs) * TRIALS_PER_WORKER == 400
    study = replayed(url, options)
    assert_replay_holds_what_was_told(study, told + told_by_crashed)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    # Lost: at most the one trial the killed worker was running (its last record may have
    # landed, COMPLETE, before the kill: then only the worker's own note of it is missing).
    assert len(states) - len(told) - len(told_by_crashed) <= 1
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.RUNNING) == len(states)
    tokens = segment_tokens(url, options)
    assert len(set(tokens)) == len(tokens), "an append was stored twice"
    figures.add("trials run by workers sharing a bucket journal", len(states))

    # A worker restarted on machine a joins from the newest snapshot and goes on.
    rejoined = str(tmp_path / "rejoined.json")
    assert join_all(start_workers([(*crash_spec[:3], 10, rejoined, None)])) == [0]
    told_again, joined_at = told_by(rejoined)
    assert joined_at is not None and len(told_again) == 10
    assert_replay_holds_what_was_told(replayed(url, options), told + told_by_crashed + told_again)


@pytest.mark.slow(seconds=70)
@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_through_faults_and_lost_create_answers_nothing_is_duplicated_or_lost(
    request, kind, tmp_path
):
    spec = empty_store(request, kind, tmp_path)
    new_study(*spec)
    throttled = S3_SLOW_DOWN if kind == "s3" else gcs_error(503, "backendError")
    with FaultProxy(spec.endpoint, seed=3) as proxy:
        options = {**spec.options, spec.endpoint_option: proxy.endpoint_url}
        proxy.answer_randomly(0.05, 503, throttled)
        # The server stores the segment, the worker never hears: its retry finds the
        # place taken and must tell its own segment from another worker's by reading it.
        # (gcsfs names the object in the body of its one-request upload: every create.)
        log_keys = "journals/hpo/log/" if kind == "s3" else "uploadType=multipart"
        proxy.lose_matching(log_keys, 20, method="PUT" if kind == "s3" else "POST", every=3)
        outs = [str(tmp_path / f"w{i}.json") for i in range(3)]
        exits = join_all(start_workers([(spec.url, options, None, 15, o, None) for o in outs]))
        assert exits == [0, 0, 0]
        lost = [r for r in proxy.log if r.status == 0 and log_keys in r.path]
        assert len(lost) == 20 and proxy.count(status=503) > 0
    told = [t for out in outs for t in told_by(out)[0]]
    assert len(told) == 45
    study = replayed(*spec)
    assert_replay_holds_what_was_told(study, told)
    assert len(study.trials) == 45
    tokens = segment_tokens(*spec)
    assert len(tokens) == len(set(tokens)), "a segment was stored twice"


def test_one_process_many_studies_and_a_second_backend_see_one_log(tmp_path):
    target = tmp_path / "bucket"
    first = JournalStorage(BucketJournalBackend(target))
    a = optuna.create_study(study_name="a", storage=first)
    b = optuna.create_study(study_name="b", storage=first, direction="maximize")
    a.optimize(lambda t: t.suggest_int("n", 0, 9), n_trials=3)
    b.optimize(lambda t: t.suggest_int("n", 0, 9), n_trials=2)
    second = JournalStorage(BucketJournalBackend(target, cache_dir=tmp_path / "cache"))
    loaded = [optuna.load_study(study_name=n, storage=second) for n in "ab"]
    assert [len(study.trials) for study in loaded] == [3, 2]
    assert {s.study_name for s in optuna.get_all_study_summaries(second)} == {"a", "b"}


@pytest.mark.parametrize("kind", ["gdrive", "drive"])
def test_a_store_without_create_only_writes_is_refused_with_what_to_use(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    with pytest.raises(ConfigError, match=r"create-only writes.*use an S3 or GCS bucket"):
        BucketJournalBackend(target)
    assert target.backend.list_dir(layout.journal_prefix("optuna")) == []


def test_a_server_that_ignores_if_none_match_is_refused(request, tmp_path):
    spec = empty_store(request, "s3", tmp_path)
    with FaultProxy(spec.endpoint) as proxy:
        proxy.strip_header("If-None-Match")  # as s3rver does: the condition is not honoured
        target = open_target(spec.url, **{**spec.options, "endpoint_url": proxy.endpoint_url})
        with pytest.raises(ConfigError, match=r"overwrote an object.*ignores the condition"):
            BucketJournalBackend(target)


@pytest.mark.parametrize(("kind", "honoured"), [("file", True), ("s3", True), ("drive", False)])
def test_doctor_probes_for_create_only_writes(request, kind, honoured, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    (tmp_path / "model.bin").write_bytes(b"weights")
    backup(tmp_path / "model.bin", target=open_target(url, **options))  # the target exists
    found = {f.check: f for f in run_doctor(url, options).findings}["create-only"]
    assert (found.level, "bucket journal refuses" in found.message) == (
        ("ok", False) if honoured else ("warning", True)
    )


def test_doctor_finds_a_server_that_ignores_if_none_match(request, tmp_path):
    spec = empty_store(request, "s3", tmp_path)
    with FaultProxy(spec.endpoint) as proxy:
        proxy.strip_header("If-None-Match")
        report = run_doctor(spec.url, {**spec.options, "endpoint_url": proxy.endpoint_url})
    found = {f.check: f for f in report.findings}["create-only"]
    assert found.level == "warning" and "ignores the condition" in found.message


NO_SUCH_KEY = b"<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"


@pytest.mark.parametrize("stack", ["s3fs", "direct"])
def test_a_lost_create_answer_on_a_store_slow_to_show_it_is_not_stored_twice(
    request, tmp_path, monkeypatch, stack
):
    import mlbackup_s3.direct

    # Through s3fs, botocore re-sends a create whose answer was lost; the direct path leaves
    # that to the retry policy, which reads the key back first.
    if stack == "s3fs":  # every call through s3fs
        monkeypatch.setattr(mlbackup_s3.direct, "_usable", lambda options: False)
    spec = empty_store(request, "s3", tmp_path)
    with FaultProxy(spec.endpoint) as proxy:
        target = open_target(spec.url, **{**spec.options, "endpoint_url": proxy.endpoint_url})
        storage = JournalStorage(BucketJournalBackend(target, name=STUDY))
        first = f"{layout.journal_prefix(STUDY)}/log/000000000000.json"
        # The create lands and its answer is lost; the client's retry is refused as taken (or
        # it reads the key back), and the read that would recognise the segment as ours finds
        # nothing yet.
        proxy.lose_matching(first, 1, method="PUT")
        if stack == "s3fs":
            proxy.answer_matching(first, 404, NO_SUCH_KEY, nth=3)
        else:
            proxy.answer_matching(first, 404, NO_SUCH_KEY, nth=2)
        optuna.create_study(study_name=STUDY, storage=storage)
        seen = [(r.method, r.status) for r in proxy.log if first in r.path]
        if stack == "s3fs":
            assert seen[1:5] == [("PUT", 0), ("PUT", 412), ("GET", 404), ("GET", 200)]
        else:
            # Read back, not there yet; created again, refused as taken; read: ours.
            assert seen[1:4] == [("PUT", 0), ("GET", 404), ("PUT", 412)], seen
            assert seen[-1] == ("GET", 200), seen
    assert len(segment_tokens(*spec)) == 1
    assert len(replayed(*spec).trials) == 0  # one study, replayed without error
