"""data.layout: reading a dataset's manifest."""
import re

import pytest

from common.errors import DataError
from data import layout
from tests import fakes


def test_duplicate_ids_in_the_manifest_are_an_error(tmp_path):
    """A repeated id (here also across splits) would count one galaxy twice and drop
    another: one line naming the manifest and the repeated ids, whichever split is read."""
    root = fakes.make_fake(tmp_path / "ds", size=8, n_train=3, n_test=2)
    man = layout.manifest_path(root)
    rows = man.read_text().splitlines()
    man.write_text("\n".join(rows + [rows[1], rows[4].replace("test", "train"), rows[1]])
                   + "\n")
    for split in (None, "train", "test"):
        with pytest.raises(DataError, match=rf"^{re.escape(str(man))}: duplicate "
                           r"id\(s\) 'g00', 'g03'; every galaxy must be listed once$"):
            layout.read_manifest(root, split)
