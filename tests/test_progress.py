import io

from recipe_utils.progress import tqdm


def test_a_bar_over_nothing_is_not_drawn():
    """Rendering zero clips or scoring a finished split left "0it [00:00]" lines in notebooks."""
    shown = {"file": io.StringIO(), "disable": False}  # the tests' TQDM_DISABLE aside
    assert tqdm([], **shown).disable and tqdm(total=0, **shown).disable
    assert not tqdm(total=2, **shown).disable and not tqdm([1], **shown).disable
