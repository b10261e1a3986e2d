"""The ``regionattack`` command line: its argument parsers and the commands it offers.

Each command is run end to end by the tests of what it runs (tests/bench/test_runner.py for
``bench``, tests/test_maps.py for ``map``, tests/test_demo.py for ``demo``).
"""

import argparse

import pytest

from regionattack.cli import (
    build_parser,
    main,
    parse_floats,
    parse_grid,
    parse_option,
    parse_radii,
    parse_radius,
    parse_size,
)


def test_sizes_are_height_x_width():
    assert parse_size("176x240") == (176, 240)
    assert parse_size("96X128") == (96, 128)
    for bad in ("176", "0x240", "ax b", "1x2x3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_radii_are_in_image_units():
    assert parse_radius("8/255") == pytest.approx(8 / 255)
    assert parse_radius("0.0314") == 0.0314
    assert parse_radii("2/255,8/255") == pytest.approx((2 / 255, 8 / 255))
    with pytest.raises(argparse.ArgumentTypeError, match="8/255"):
        parse_radius("8")  # a pixel-unit radius gets the fraction it probably means
    for bad in ("eight", "8/0", "-0.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_radius(bad)


def test_options_grids_and_float_lists():
    assert parse_option("decoder_atrous_rates=(2, 4, 6)") == ("decoder_atrous_rates", (2, 4, 6))
    assert parse_option("encoder_name=resnet18") == ("encoder_name", "resnet18")
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        parse_option("no-equals")
    assert parse_grid("3") == 3 and parse_grid("2x4") == (2, 4)
    with pytest.raises(argparse.ArgumentTypeError, match="ROWSxCOLS"):
        parse_grid("three")
    assert parse_floats("0.5,0.25") == (0.5, 0.25)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_floats("0.5,x")


def test_the_commands_are_demo_bench_and_map(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for command in ("demo", "bench", "map"):
        assert command in usage
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subcommands.choices) == {"demo", "bench", "map"}


@pytest.mark.parametrize(
    "argv",
    [
        ["nope"],
        ["bench", "--eps", "8"],
        ["map", "--grid", "three"],
        ["demo", "--size", "100x100"],
        # counts are checked by the parser, not replaced by defaults or found after the work
        ["demo", "--eval-images", "0"],
        ["demo", "--train-images", "0"],
        ["demo", "--map-grid", "-1"],
        ["map", "--k", "0"],
        ["map", "--images", "0"],
        ["map", "--grid", "0x2"],
        ["bench", "--batch-size", "0"],
        ["bench", "--attack-steps", "-3"],
        ["bench", "--random-draws", "-1"],
    ],
)
def test_bad_arguments_exit_with_status_2_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *REQUIRED.get(argv[0], [])])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error" in err
    if len(argv) > 1:
        assert f"argument {argv[1]}" in err  # the message names the argument


REQUIRED = {
    "bench": ["--dataset", "camvid", "--root", "missing", "--out", "missing"],
    "map": ["--dataset", "camvid", "--root", "missing", "--out", "missing"],
}


def _command(name: str, camvid, checkpoint, out) -> list[str]:
    data = ["--dataset", "camvid", "--root", str(camvid), "--checkpoint", str(checkpoint)]
    return {
        "bench": ["bench", *data, "--out", str(out), "--quiet"],
        "map": ["map", *data, "--out", str(out), "--quiet"],
        "demo": ["demo", "--out", str(out), "--quiet"],
    }[name]


@pytest.mark.parametrize("command", ["bench", "map", "demo"])
def test_a_second_run_on_an_output_folder_in_use_exits_2_at_once_naming_the_holder(
    command, camvid, checkpoint, tmp_path, capsys, monkeypatch
):
    import os

    from regionattack.bench import runner
    from regionattack.bench.lock import FolderLock

    def no_work(*args, **kwargs):
        raise AssertionError("started work in a folder in use")

    monkeypatch.setattr(runner, "load_model", no_work)  # bench and map load through it
    monkeypatch.setattr("regionattack.demo.load_data", no_work)
    with FolderLock(tmp_path):  # the first run, still going
        assert main(_command(command, camvid, checkpoint, tmp_path)) == 2
    error = capsys.readouterr().err
    assert f"regionattack {command}: error: {tmp_path} is in use by PID {os.getpid()}" in error
    assert list(tmp_path.iterdir()) == []  # nothing written, and the holder's lock released


# Every command x the mistakes a user makes: exit 2, one line naming the argument or the file,
# no traceback, nothing written. (Parser-level mistakes are in the test above.)
MISTAKES = {
    "root is missing": lambda camvid, ckpt, out: ["--root", str(out.parent / "nowhere")],
    "checkpoint is a folder": lambda camvid, ckpt, out: ["--checkpoint", str(camvid)],
    "out is a file": lambda camvid, ckpt, out: ["--out", str(ckpt)],
    "unknown attack": lambda camvid, ckpt, out: ["--attack" if "map" in str(out) else "--attacks",
                                                  "FGSM"],
    "a hiding attack": lambda camvid, ckpt, out: ["--attack" if "map" in str(out) else "--attacks",
                                                   "HideClasses"],
    "model option typo": lambda camvid, ckpt, out: ["--checkpoint", "", "--model",
                                                     "smp:FPN:resnet18", "--num-classes", "11",
                                                     "--option", "decoder_atention_type=scse"],
}  # fmt: skip


@pytest.mark.parametrize("mistake", list(MISTAKES))
@pytest.mark.parametrize("command", ["bench", "map"])
def test_every_command_reports_a_mistake_in_one_line_with_status_2(
    command, mistake, camvid, checkpoint, tmp_path, capsys
):
    out = tmp_path / command
    argv = _command(command, camvid, checkpoint, out) + MISTAKES[mistake](camvid, checkpoint, out)
    if "" in argv:  # no checkpoint: the model from --model
        index = argv.index("--checkpoint")
        del argv[index : index + 2]
        index = argv.index("--checkpoint")
        del argv[index : index + 2]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"regionattack {command}: error: ") and "\n" not in error, error
    assert "Traceback" not in error
    assert EXPECTED[mistake] in error, error
    assert not out.exists() or list(out.iterdir()) == [], "work started"


EXPECTED = {
    "root is missing": "nowhere",
    "checkpoint is a folder": "is not a file",
    "out is a file": "is a file",
    "unknown attack": "unknown attack 'FGSM'",
    "a hiding attack": "HideClasses hides classes",
    "model option typo": "decoder_atention_type",
}


def _camvid_with_train(camvid, tmp_path):
    """The test CamVid with its six val pairs also as the train split."""
    root = tmp_path / "camvid"
    root.mkdir()
    for split, source in (("train", "val"), ("val", "val")):
        for suffix in ("", "annot"):
            (root / f"{split}{suffix}").symlink_to(camvid / f"{source}{suffix}")
    return root


# The demo's mistakes: exit 2, one line, before the data is made or the model trained.
DEMO_MISTAKES = {
    "camvid root is missing": (["--data", "camvid", "--root", "{tmp}/nowhere"], "nowhere"),
    "camvid without root": (["--data", "camvid"], "--data camvid needs --root"),
    "root without camvid": (["--root", "{camvid}"], "--root is read only with --data camvid"),
    "out is a file": (["--out", "{file}"], "is a file"),
    "more eval images than val holds": (
        ["--data", "camvid", "--root", "{camvid}", "--train-images", "6", "--eval-images", "500"],
        "asked for 500 CamVid val images",
    ),
    "more train images than train holds": (
        ["--data", "camvid", "--root", "{camvid}", "--train-images", "7"],
        "asked for 7 CamVid train images",
    ),
    "more attacked than evaluated images": (
        ["--eval-images", "4", "--attack-images", "9"],
        "--attack-images 9 exceeds the 4",
    ),
}


@pytest.mark.parametrize("mistake", list(DEMO_MISTAKES))
def test_the_demo_reports_a_mistake_in_one_line_with_status_2(
    mistake, camvid, tmp_path, capsys, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("trained a model for a demo that cannot run")

    monkeypatch.setattr("regionattack.demo.trained_model", no_training)
    (tmp_path / "file").write_text("not a folder")
    camvid = _camvid_with_train(camvid, tmp_path)
    names = {"tmp": tmp_path, "camvid": camvid, "file": tmp_path / "file"}
    argv, expected = DEMO_MISTAKES[mistake]
    out = tmp_path / "out"
    argv = ["demo", "--out", str(out), "--quiet", *(a.format(**names) for a in argv)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("regionattack demo: error: ") and "\n" not in error, error
    assert expected in error, error
    assert not out.exists() or [p.name for p in out.iterdir()] == [], "work started"
