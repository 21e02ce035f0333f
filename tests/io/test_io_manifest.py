"""Data manifests: loading, and input checks (name, size, keys/shapes/dtypes, sha256)."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from io_files import known_images, write_h5, write_parquet, write_root_image

from graphevent.errors import ConfigError, DataError
from graphevent.io.manifest import check_inputs, describe_file, load_data_manifest, sha256_file

MANIFESTS = sorted((Path(__file__).parents[2] / "data_manifests").glob("*.yaml"))


def write_manifest(tmp_path, files, keys, fmt="ml4sci_hdf5", name="tiny"):
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"name": name, "format": fmt, "files": files, "keys": keys}))
    return load_data_manifest(path)


H5_KEYS = {"X_jets": {"shape": ["N", 8, 6, 3], "dtype": "float32"}, "y": {"shape": ["N"]}, "m0": {"shape": ["N"], "dtype": "float64"}}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_shipped_manifests_load(path):
    m = load_data_manifest(path)
    assert m["files"] and m["keys"] and m["format"] in ("ml4sci_hdf5", "e2e_parquet", "particles")
    for entry in m["files"]:
        assert entry.get("sha256") is None or len(entry["sha256"]) == 64


def test_shipped_manifests_cover_the_public_datasets():
    names = {e.get("name") for p in MANIFESTS for e in load_data_manifest(p)["files"]}
    for expected in ["quark-gluon_data-set_n139306.hdf5", "QCDToGGQQ_IMGjet_RH1all_jet0_run0_n36272.test.snappy.parquet",
                     "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5", "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5",
                     "QG_jets.npz", "QG_jets_19.npz"]:
        assert expected in names
    ef = load_data_manifest(Path(MANIFESTS[0]).parent / "energyflow_qg_jets.yaml")
    assert len(ef["files"]) == 20 and all(e["events"] == 100000 for e in ef["files"])


def test_sha256_file_streams_whole_file(tmp_path):
    data = np.random.default_rng(0).bytes(3 * 1000 + 17)
    (tmp_path / "f.bin").write_bytes(data)
    assert sha256_file(tmp_path / "f.bin", block_size=1000) == hashlib.sha256(data).hexdigest()


def test_good_file_passes_and_reports(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(5))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    m = write_manifest(tmp_path, [{"name": "qg.h5", "events": 5, "size": path.stat().st_size, "sha256": digest}], H5_KEYS)
    [info] = check_inputs([path], m)
    assert info == {"path": str(path), "name": "qg.h5", "size": path.stat().st_size, "events": 5, "sha256": digest,
                    "checked": ["name", "size", "keys", "sha256"]}


def test_wrong_size(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(5))
    size = path.stat().st_size
    m = write_manifest(tmp_path, [{"name": "qg.h5", "size": size + 1}], H5_KEYS)
    with pytest.raises(DataError, match=re.escape(f"qg.h5: size is {size} bytes; expected {size + 1} (dataset 'tiny')")):
        check_inputs([path], m)


def test_wrong_sha256(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(5))
    m = write_manifest(tmp_path, [{"name": "qg.h5", "sha256": "ab" * 32}], H5_KEYS)
    actual = sha256_file(path)
    with pytest.raises(DataError, match=re.escape(f"qg.h5: sha256 is {actual}; expected {'ab' * 32} (dataset 'tiny')")):
        check_inputs([path], m)
    # checksum checks can be skipped (e.g. when the caller hashes inputs itself)
    assert check_inputs([path], m, verify_sha256=False)[0]["checked"] == ["name", "keys"]


def test_unknown_file_name(tmp_path):
    path = write_h5(tmp_path / "mine.h5", known_images(2))
    m = write_manifest(tmp_path, [{"name": "qg.h5"}], H5_KEYS)
    with pytest.raises(DataError, match=re.escape("mine.h5: not a file of dataset 'tiny'; known files: qg.h5")):
        check_inputs([path], m)


def test_event_count_and_shapes(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(5))
    m = write_manifest(tmp_path, [{"name": "qg.h5", "events": 6}], H5_KEYS)
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'X_jets' has shape (5, 8, 6, 3); expected (6, 8, 6, 3) (dataset 'tiny')")):
        check_inputs([path], m)
    keys = dict(H5_KEYS, X_jets={"shape": ["N", 8, 6, 2]})
    m = write_manifest(tmp_path, [{"name": "qg.h5"}], keys)
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'X_jets' has shape (5, 8, 6, 3); expected (5, 8, 6, 2)")):
        check_inputs([path], m)


def test_keys_disagree_on_event_count(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(5), labels=np.zeros(4))
    m = write_manifest(tmp_path, [{"pattern": "*.h5"}], H5_KEYS)
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'y' has shape (4,); expected (5,) (dataset 'tiny')")):
        check_inputs([path], m)


def test_missing_key_and_dtype(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3), targets={"m0": np.zeros(3, np.float32)})
    m = write_manifest(tmp_path, [{"name": "qg.h5"}], {"X_jets": {"shape": ["N", 8, 6, 3]}, "pt": {"shape": ["N"]}})
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'pt' not found; expected by dataset 'tiny' (keys in file: ['X_jets', 'm0', 'y'])")):
        check_inputs([path], m)
    m = write_manifest(tmp_path, [{"name": "qg.h5"}], H5_KEYS)
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'm0' has dtype float32; expected float64 (dataset 'tiny')")):
        check_inputs([path], m)


def test_not_readable_as_format(tmp_path, text_file):
    path = text_file("qg.h5")
    m = write_manifest(tmp_path, [{"name": "qg.h5"}], H5_KEYS)
    with pytest.raises(DataError, match=r"^qg\.h5: cannot read as ml4sci_hdf5: .*file signature not found"):
        check_inputs([path], m)


def test_describe_parquet_npz_root(tmp_path):
    pq_path = write_parquet(tmp_path / "a.parquet", known_images(4), rows_per_group=1)
    d = describe_file(pq_path, "e2e_parquet")
    assert d["X_jets"] == ((4, 3, 8, 6), "double") and d["y"] == ((4,), "double")
    np.savez(tmp_path / "QG_jets.npz", X=np.zeros((7, 11, 4)), y=np.zeros(7))
    d = describe_file(tmp_path / "QG_jets.npz", "particles")
    assert d == {"X": ((7, 11, 4), "float64"), "y": ((7,), "float64")}
    d = describe_file(write_root_image(tmp_path / "a.root", known_images(3)), "root_image")
    assert d["img"] == ((3, 8, 6, 3), "float32") and d["y"] == ((3,), "int32")


def test_energyflow_manifest_rejects_a_look_alike(tmp_path):
    """A file named like an energyflow file but with other contents fails on its checksum."""
    np.savez(tmp_path / "QG_jets_3.npz", X=np.zeros((100000, 2, 4), np.float32), y=np.zeros(100000))
    m = load_data_manifest(Path(MANIFESTS[0]).parent / "energyflow_qg_jets.yaml")
    with pytest.raises(DataError, match=r"^QG_jets_3\.npz: sha256 is [0-9a-f]{64}; expected 7dc9a50bb38e9f6f"):
        check_inputs([tmp_path / "QG_jets_3.npz"], m)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"name": "x", "format": "csv", "files": [{"name": "a"}]}, "format: invalid value 'csv'; expected one of ml4sci_hdf5"),
        ({"name": "x", "format": "particles", "files": [{"name": "a", "sha256": "123"}]}, "files[0].sha256: invalid value '123'; expected 64 hex digits or null"),
        ({"name": "x", "format": "particles", "files": [{"name": "a", "md5": "1"}]}, "files[0]: unknown keys ['md5']"),
        ({"name": "x", "format": "particles", "files": [{"name": "a", "pattern": "*"}]}, "files[0]: give exactly one of 'name' or 'pattern'"),
        ({"name": "x", "format": "particles", "files": []}, "files: expected a non-empty list of files"),
        ({"name": "x", "format": "particles", "files": [{"name": "a"}], "keys": {"X": {"shape": ["M"]}}}, "keys.X.shape: invalid value ['M']"),
    ],
)
def test_bad_manifest(tmp_path, raw, message):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_data_manifest(path)
