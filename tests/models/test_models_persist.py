"""Saving with a model card and checksums; loading refuses altered files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from hccstrat.exceptions import InputFileError, ModelError
from hccstrat.io.atomic import sha256_file
from hccstrat.models import PreModel, load_model, read_model_card, save_model
from hccstrat.survival import endpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory, wide):
    model = PreModel(calibration_folds=2).fit(wide, endpoint(wide, "aggressive"))
    path = tmp_path_factory.mktemp("m") / "pre.hccmodel"
    card = save_model(model, path, name="pre-test", intended_use="tests", metrics={"c": 0.7})
    return model, path, card


def test_round_trip_and_card(saved, wide):
    model, path, _card = saved
    loaded = load_model(path)
    np.testing.assert_array_equal(
        loaded.predict_score(wide.head(20)), model.predict_score(wide.head(20))
    )
    assert loaded.model_card_.name == "pre-test"
    c = read_model_card(path)
    assert c.model_class == "hccstrat.models.pre.PreModel" and c.metrics == {"c": 0.7}
    assert c.training_data["n_patients"] == len(wide) and "log_afp" in c.features
    assert c.parameters["threshold"] == 0.5 and "scikit-survival" in c.library_versions
    assert "intended use: tests" in c.to_markdown()
    assert path.with_name("pre.hccmodel.sha256").read_text().split()[0] == sha256_file(path)


def _copy(path, tmp_path, *, card_edit=None, payload=None, fix_checksum=True):
    out = tmp_path / "copy.hccmodel"
    with zipfile.ZipFile(path) as zin:
        card = json.loads(zin.read("card.json"))
        body = zin.read("model.pkl") if payload is None else payload
    if card_edit:
        card_edit(card)
    with zipfile.ZipFile(out, "w") as zout:
        zout.writestr("card.json", json.dumps(card))
        zout.writestr("model.pkl", body)
    if fix_checksum:
        out.with_name(out.name + ".sha256").write_text(f"{sha256_file(out)}  {out.name}\n")
    return out


def test_tampered_archive_refused(saved, tmp_path):
    _, path, _ = saved
    bad = tmp_path / "bad.hccmodel"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    bad.with_name(bad.name + ".sha256").write_text(
        path.with_name(path.name + ".sha256").read_text()
    )
    with pytest.raises(ModelError, match="altered"):
        load_model(bad)


def test_tampered_payload_with_recomputed_file_checksum_refused(saved, tmp_path):
    _, path, _ = saved
    with zipfile.ZipFile(path) as z:
        payload = bytearray(z.read("model.pkl"))
    payload[-10] ^= 0x01
    with pytest.raises(ModelError, match="tampered"):
        load_model(_copy(path, tmp_path, payload=bytes(payload)))


def test_incompatible_versions_refused(saved, tmp_path):
    _, path, _ = saved

    def old(card):
        card["library_versions"]["scikit-learn"] = "0.20.0"

    copy = _copy(path, tmp_path, card_edit=old)
    with pytest.raises(ModelError, match="incompatible versions"):
        load_model(copy)
    assert load_model(copy, allow_version_mismatch=True) is not None

    def future(card):
        card["format_version"] = 99

    with pytest.raises(ModelError, match="format version"):
        load_model(_copy(path, tmp_path, card_edit=future))


def test_missing_checksum_and_missing_file(saved, tmp_path):
    _, path, _ = saved
    copy = _copy(path, tmp_path, fix_checksum=False)
    with pytest.raises(ModelError, match="checksum file"):
        load_model(copy)
    assert load_model(copy, expected_sha256=sha256_file(copy)) is not None
    with pytest.raises(ModelError, match="expected"):
        load_model(path, expected_sha256="0" * 64)
    with pytest.raises(InputFileError):
        load_model(tmp_path / "nope.hccmodel")
    (tmp_path / "junk.hccmodel").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable"):
        load_model(tmp_path / "junk.hccmodel", require_checksum_file=False)


class _Shell:
    """A pickle whose author wants a command run on load (it would create ``marker``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_model_file_that_would_run_code_is_refused(saved, tmp_path):
    import hashlib
    import pickle

    from hccstrat.io.safe_pickle import UnsafePickleError

    # a malicious *author*: card checksum and .sha256 file agree with the payload
    _, path, _ = saved
    marker = tmp_path / "ran"
    payload = pickle.dumps(_Shell(marker))

    def same_hash(card):
        card["payload_sha256"] = hashlib.sha256(payload).hexdigest()

    evil = _copy(path, tmp_path, card_edit=same_hash, payload=payload)
    with pytest.raises(UnsafePickleError, match=r"refers to (posix|os|nt)\.system"):
        load_model(evil)
    assert not marker.exists()


def test_objects_outside_the_allow_list_need_trusted(tmp_path):
    from argparse import Namespace

    from hccstrat.io.safe_pickle import UnsafePickleError

    save_model(Namespace(a=1), tmp_path / "n.hccmodel", name="n", intended_use="tests")
    with pytest.raises(UnsafePickleError, match=r"argparse\.Namespace.*trusted=True"):
        load_model(tmp_path / "n.hccmodel")
    assert load_model(tmp_path / "n.hccmodel", trusted=True).a == 1


def test_a_model_that_cannot_be_pickled_is_a_model_error(tmp_path):
    class Local:  # defined in a function: pickle cannot find it by name
        pass

    with pytest.raises(ModelError, match="cannot be saved"):
        save_model(Local(), tmp_path / "x.hccmodel", name="x", intended_use="tests")
    assert not (tmp_path / "x.hccmodel").exists()


def test_library_functions_that_touch_files_are_refused(tmp_path):
    import pickle

    from hccstrat.io.safe_pickle import UnsafePickleError, restricted_loads

    class Writer:  # numpy is allowed for its classes, not for numpy.save
        def __reduce__(self):
            return (np.save, (str(tmp_path / "x.npy"), np.zeros(2)))

    with pytest.raises(UnsafePickleError, match=r"numpy\.save"):
        restricted_loads(pickle.dumps(Writer()), source="w.pkl")
    assert not (tmp_path / "x.npy").exists()
    # what models are made of still loads: arrays, frames, containers
    import pandas as pd

    obj = {"a": np.arange(3.0), "f": pd.DataFrame({"x": [1, 2]}), "s": {1, 2}, "t": slice(1)}
    back = restricted_loads(pickle.dumps(obj))
    assert back["a"].tolist() == [0.0, 1.0, 2.0] and back["f"]["x"].tolist() == [1, 2]
