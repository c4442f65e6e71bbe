"""make class's check that its users can reach the class folder, the environment and the proxy
(the rest of make class is tests/hub, which needs root)."""

import shutil
import tempfile
from pathlib import Path

import pytest

from rnngrading.classbox import ClassError, Layout, require_reachable


@pytest.fixture
def open_base():
    """A folder every user can reach (pytest's own temp folders sit in a 0700 one)."""
    base = Path(tempfile.mkdtemp(prefix="rnncourse-classbox-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def test_a_private_folder_above_the_class_is_named_with_the_fix(open_base):
    require_reachable(Layout(open_base / "class"))
    private = open_base / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ClassError, match=r"private \(mode 700\) keeps the class's users out"):
        require_reachable(Layout(private / "class"))
    private.chmod(0o711)
    require_reachable(Layout(private / "class"))  # through, now
    hidden = open_base / "hidden"
    hidden.mkdir(mode=0o700)
    with pytest.raises(ClassError, match="RNNCOURSE_CLASS_ENV"):
        require_reachable(Layout(open_base / "class", env=hidden / "env"))
