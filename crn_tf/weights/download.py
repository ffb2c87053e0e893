"""The authors' published weights in one command: fetch, check, import, and name them.

    python -m crn_tf.download authors-256p            # or: crn-download authors-256p vgg19-mat inception
    python demo.py --checkpoint authors-256p ...       # demo, export, evaluate, train --init-from

Where each file lives is data (`CATALOGUE`): the checkpoints' `.data` files and the VGG-19 file
on the authors' Google Drive (the IDs of their `download_models.py`), the `.index` files in their
git repository, and FID's Inception graph on TensorFlow's model server. `--base-url URL` (or
CRN_TF_WEIGHTS_URL) takes every file from a mirror instead, at the same relative path
(`URL/result_256p/model.ckpt.index`, ...). Files land in the cache (`--cache-dir`, else
CRN_TF_HOME, else ~/.cache/crn_tf) under that relative path; downloads resume
(`crn_tf.weights.fetch`). A checkpoint is then imported with `crn_tf.weights.tf1_import` (which checks every
variable's name and shape) into `CACHE/checkpoints/NAME/`, the directory `resolve_checkpoint`
gives for the name. The `.meta` graphs the original also fetched are not needed: crn_tf
builds the network itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Sequence

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import parse_cli
from crn_tf.nn.presets import get_preset
from crn_tf.weights.fetch import DownloadError, download_file

log = logging.getLogger("crn_tf.weights.download")  # not __name__: that is __main__ under python -m

BASE_URL_ENV = "CRN_TF_WEIGHTS_URL"
HOME_ENV = "CRN_TF_HOME"
AUTHORS_REPOSITORY = "https://raw.githubusercontent.com/CQFIO/PhotographicImageSynthesis/master/"
TENSORFLOW_MODELS = "http://download.tensorflow.org/models/image/imagenet/"
CHECKPOINTS_DIR = "checkpoints"


def google_drive(file_id: str) -> str:
    """The direct download URL of a shared Google Drive file (the original's host for the large files)."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file: its path in the cache and on a mirror, where the authors put it, its size if known."""

    path: str
    url: str
    size: int | None = None


@dataclasses.dataclass(frozen=True)
class Weights:
    """A named download: its files and, for a checkpoint, its TF1 prefix and the network it must be.

    `preset` names the `crn_tf.nn.presets` generator (size, widths, k; 19 classes) that
    the imported checkpoint must be; one that imports as another network is refused.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    checkpoint: str | None = None
    preset: str | None = None


def _authors_checkpoint(name: str, folder: str, data_id: str, description: str, preset: str) -> Weights:
    """A result_* folder of the original: .index from the git repository, .data from Google Drive."""
    return Weights(
        name=name,
        description=description,
        files=(RemoteFile(f"{folder}/model.ckpt.index", AUTHORS_REPOSITORY + f"{folder}/model.ckpt.index"),
               RemoteFile(f"{folder}/model.ckpt.data-00000-of-00001", google_drive(data_id))),
        checkpoint=f"{folder}/model.ckpt",
        preset=preset,
    )


CATALOGUE: dict[str, Weights] = {
    weights.name: weights
    for weights in (
        _authors_checkpoint("authors-256p", "result_256p", "0B_B_FOgPxgFLLUVQTEg0alRWNDQ",
                            "Cityscapes 256x512, k = 9 (1.2 GB with Adam slots)", "256p"),
        _authors_checkpoint("authors-512p", "result_512p", "0B_B_FOgPxgFLNjBMRjZWNjVyS1E",
                            "Cityscapes 512x1024, k = 1 (1.2 GB)", "512p"),
        _authors_checkpoint("authors-1024p", "result_1024p", "0B_B_FOgPxgFLLXdaaU5yR0ZKaU0",
                            "Cityscapes 1024x2048, k = 1 (500 MB)", "1024p"),
        _authors_checkpoint("authors-gta", "result_GTA", "0B_B_FOgPxgFLTVl2MWxpOGtzczA",
                            "GTA5 256x512, k = 9, Cityscapes classes (1.2 GB)", "256p"),
        Weights("vgg19-mat", "MatConvNet VGG-19 for the perceptual loss (train.py --vgg-weights PATH, 510 MB)",
                (RemoteFile("VGG_Model/imagenet-vgg-verydeep-19.mat", google_drive("0B_B_FOgPxgFLRjdEdE9NNTlzUWc"),
                            size=534_904_783),)),
        Weights("inception", "TF1 Inception graph for FID/KID (crn_tf.evaluate --inception PATH, 85 MB)",
                (RemoteFile("inception-2015-12-05.tgz", TENSORFLOW_MODELS + "inception-2015-12-05.tgz",
                            size=88_931_400),)),
    )
}
"""Name -> what to fetch. URLs: the original's download_models.py (Drive IDs), its git repository, TF's model server."""


def cache_dir(path: str | None = None) -> str:
    """`path`, else CRN_TF_HOME, else ~/.cache/crn_tf."""
    return os.path.abspath(os.path.expanduser(path or os.environ.get(HOME_ENV) or os.path.join("~", ".cache", "crn_tf")))


def source_url(remote: RemoteFile, base_url: str | None = None) -> str:
    """Where to fetch `remote`: the mirror (`base_url`, else CRN_TF_WEIGHTS_URL) at its relative path, else its own URL."""
    base = base_url or os.environ.get(BASE_URL_ENV)
    return base.rstrip("/") + "/" + remote.path if base else remote.url


def checkpoint_dir(name: str, cache: str | None = None) -> str:
    """The crn_tf checkpoint directory that `name`'s TF1 checkpoint is imported into."""
    return os.path.join(cache_dir(cache), CHECKPOINTS_DIR, name)


def _weights(name: str) -> Weights:
    if name not in CATALOGUE:
        raise DownloadError(f"{name}: not a known download; choose from {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def fetch(name: str, *, cache: str | None = None, base_url: str | None = None, retries: int = 3,
          backoff: float = 1.0, progress: bool = True) -> str:
    """Downloads `name` (if needed) and returns what to use: a checkpoint directory or the file's path.

    Raises DownloadError (one line: the URL, what went wrong, how to use a mirror or a local file).
    """
    weights = _weights(name)
    root = cache_dir(cache)
    if weights.checkpoint and _is_checkpoint(checkpoint_dir(name, root)):
        return checkpoint_dir(name, root)
    for remote in weights.files:
        destination = os.path.join(root, remote.path)
        url = source_url(remote, base_url)
        try:
            download_file(url, destination, expected_size=remote.size, retries=retries, backoff=backoff,
                          progress=progress, label=remote.path)
        except DownloadError as error:
            raise DownloadError(
                f"{error} -- to fetch {name} elsewhere, use a mirror holding {remote.path} "
                f"(crn-download {name} --base-url URL, or {BASE_URL_ENV}=URL), or put the file at {destination} "
                f"and run again"
            ) from None
    if weights.checkpoint is None:
        return os.path.join(root, weights.files[0].path)
    return import_checkpoint(weights, root)


def import_checkpoint(weights: Weights, root: str) -> str:
    """Imports the downloaded TF1 checkpoint of `weights` into its checkpoint directory; returns it."""
    from crn_tf.weights.checkpoint import save_model
    from crn_tf.weights.tf1_import import TF1ImportError, import_tf1, verify_tf1_files

    prefix = os.path.join(root, weights.checkpoint)
    try:
        tensors = verify_tf1_files(prefix)  # every tensor's length and checksum, optimizer slots too
        model = import_tf1(prefix)  # every generator variable's name and shape
    except TF1ImportError as error:
        raise DownloadError(f"{error} -- the downloaded files are not the {weights.name} checkpoint; delete "
                            f"{os.path.dirname(prefix)} and download again (or check the mirror)") from None
    if weights.preset is not None:
        _check_preset(model, weights, prefix)
    directory = checkpoint_dir(weights.name, root)
    save_model(model, directory, extra={"source": "tf1_import", "tf1_checkpoint": prefix, "download": weights.name})
    log.info("checked %d tensors (length and CRC32C) and imported %s: %d modules, %dx%d, k=%d, %s parameters -> %s",
             tensors, weights.name, model.num_modules, *model.output_size, model.num_images,
             f"{model.count_params():,}", directory)
    return directory


def _check_preset(model, weights: Weights, prefix: str) -> None:
    """DownloadError unless the imported `model` is the generator of `weights.preset`."""
    preset = get_preset(weights.preset)
    expected = {"output_size": preset.output_size, "num_images": preset.num_images, "widths": preset.widths,
                "num_classes": preset.num_classes}
    found = {"output_size": tuple(model.output_size), "num_images": model.num_images,
             "widths": tuple(model.widths), "num_classes": model.num_classes}
    wrong = [f"{key} {found[key]} (expected {expected[key]})" for key in expected if found[key] != expected[key]]
    if wrong:
        raise DownloadError(f"{prefix}: imports as another network than {weights.name} (the {weights.preset} "
                            f"generator): {', '.join(wrong)}; delete {os.path.dirname(prefix)} and download "
                            f"again (or check the mirror)")


def _is_checkpoint(directory: str) -> bool:
    from crn_tf.weights.checkpoint import CONFIG_NAME, WEIGHTS_NAME

    return all(os.path.isfile(os.path.join(directory, name)) for name in (CONFIG_NAME, WEIGHTS_NAME))


def resolve_checkpoint(path: str | None, *, progress: bool = True) -> str | None:
    """What `--checkpoint` / `--init-from` should load: `path` itself, or for a catalogue name
    (authors-256p, ...) that is not a local path, its imported directory in the cache, downloaded
    first if missing (the mirror and cache from CRN_TF_WEIGHTS_URL / CRN_TF_HOME).

    A download failure raises CheckpointError with the download's one-line message.
    """
    if path is None or os.path.exists(path) or path not in CATALOGUE or CATALOGUE[path].checkpoint is None:
        return path
    from crn_tf.weights.checkpoint import CheckpointError

    try:
        return fetch(path, progress=progress)
    except DownloadError as error:
        raise CheckpointError(str(error)) from None


# === Command line ===
def build_parser() -> argparse.ArgumentParser:
    names = "\n".join(f"  {w.name:<14} {w.description}" for w in CATALOGUE.values())
    parser = argparse.ArgumentParser(
        prog="crn-download",
        description="Download the authors' CRN checkpoints (imported into crn_tf checkpoint directories), the "
                    "VGG-19 .mat file and FID's Inception graph, resumably, into a cache.",
        epilog=f"names:\n{names}", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", metavar="NAME", choices=list(CATALOGUE), help="what to download (below)")
    parser.add_argument("--base-url", default=None,
                        help=f"a mirror with the same relative paths (default: ${BASE_URL_ENV}, else the original hosts)")
    parser.add_argument("--cache-dir", default=None, help=f"where files go (default: ${HOME_ENV}, else ~/.cache/crn_tf)")
    parser.add_argument("--retries", type=int, default=3, help="retries of a broken transfer, with back-off (default: 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    if args.retries < 0:
        return cli_error("crn-download", f"--retries must be >= 0, got {args.retries}", 2)
    for name in dict.fromkeys(args.names):  # retries and the import are logged (@cli_main shows them)
        try:
            path = fetch(name, cache=args.cache_dir, base_url=args.base_url, retries=args.retries,
                         progress=not args.no_progress)
        except DownloadError as error:
            return cli_error("crn-download", error, 1)
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
