"""crn_tf.core.logs: what a CLI shows of the library's log records."""
import logging
import sys

from crn_tf.core.logs import cli_logging, cli_main


def test_cli_logging_shows_the_librarys_records_bare_once_and_is_taken_back(capsys, monkeypatch):
    library, other = logging.getLogger("crn_tf.somewhere"), logging.getLogger("elsewhere")
    root_output = []
    root_handler = logging.Handler()
    root_handler.emit = lambda record: root_output.append(record.getMessage())
    monkeypatch.setattr(logging.root, "handlers", [root_handler])  # e.g. absl's basicConfig()
    with cli_logging():
        library.info("resumed from step %d", 8)
        library.debug("a detail")
        library.warning("warning: %s", "something")
        other.warning("not ours")
    assert capsys.readouterr().err == "resumed from step 8\nwarning: something\n"
    assert root_output == ["not ours"]  # ours went to stderr only, not a second time through the root
    top = logging.getLogger("crn_tf")
    assert top.handlers == [] and top.level == logging.NOTSET and top.propagate
    library.info("after the CLI")
    assert capsys.readouterr().err == ""


def test_cli_main_logs_while_main_runs_and_returns_its_status(capsys):
    @cli_main
    def main(argv=None):
        logging.getLogger("crn_tf.tool").info("working on %s", argv)
        print("result", file=sys.stdout)
        return 3

    assert main(["x"]) == 3
    captured = capsys.readouterr()
    assert captured.err == "working on ['x']\n" and captured.out == "result\n"
    assert main.__name__ == "main"
