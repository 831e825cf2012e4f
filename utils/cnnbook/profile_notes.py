"""What each chapter's page was produced with, and what the full profile does instead.

The published book is executed with the ``quick`` profile on a 2-core CPU without
internet. A reader looking at a training curve or an accuracy needs to know that, and what
the ``full`` profile (``CNNBOOK_PROFILE=full``, the default on a GPU) runs and reaches.
``page_note(chapter)`` says it in one sentence; ``show_page_note(chapter)`` shows that
sentence under the setup cell's ``describe()`` line as a paragraph, which wraps to the
text column (a printed line of 250 characters ran off the side of the page).

``FULL_RUNS`` holds, per chapter, what the full profile changes; each number in it is
checked against the chapter's own ``by_profile(quick=..., full=...)`` calls by a test, so
the note cannot drift from the code. ``GPU_RESULTS`` holds results measured with the full
profile on a GPU (``make gpu-check``); a chapter without one says so.
"""

from __future__ import annotations

from cnnbook._checks import check_int
from cnnbook.runtime import device, is_offline, profile

__all__ = ["FULL_RUNS", "GPU_RESULTS", "page_note", "show_page_note"]

_SAME = "runs the same cells: nothing in this chapter depends on the profile"

FULL_RUNS: dict[int, str] = {
    1: "repeats the translation experiment over 10 seeds instead of 3",
    2: _SAME,
    3: _SAME,
    4: _SAME,
    5: _SAME,
    6: "trains the NumPy network for 30 epochs instead of 15",
    7: "trains LeNet for 10 epochs on MNIST and 20 on Fashion-MNIST (quick: 2 and 4)",
    8: (
        "evaluates on 10,000 test images instead of 2,000, and repeats the plain, Mixup and "
        "CutMix runs over 10 seeds instead of 3"
    ),
    9: (
        "trains each architecture for 400 steps on 20,000 images (quick: 50 on 4,000), and "
        "the attention and scaling comparisons for 400 steps with 5 seeds each (quick: 80 "
        "steps, 3 seeds with attention and 1 for scaling)"
    ),
    10: (
        "trains the real ResNet-9 (width 64) for 24 epochs on all 50,000 training images and "
        "tests on 10,000, aiming at 94% test accuracy (quick: width 12, 3 epochs on 10,240 "
        "images, 5,000 test images, checked against 60%)"
    ),
    11: "fine-tunes on 128-pixel images for 6 epochs (quick: 64 pixels, 2 epochs)",
    12: "trains on 60,000 images for 10 epochs (quick: 20,000 for 2)",
    13: _SAME,
    14: "trains on 60,000 images for 10 epochs (quick: 20,000 for 2)",
    15: (
        "trains the detector on 12,800 scenes for 6 epochs, validates on 1,000 and fine-tunes "
        "Faster R-CNN on 4,000 (quick: 3,200 scenes, 2 epochs, 300 and 700)"
    ),
    16: "trains on 20,000 scenes for 4 epochs (quick: 3,000 for 1)",
    17: "trains for 2,000 steps instead of 150",
    18: (
        "trains on 1,000 to 50,000 images for 40 epochs and tests on 10,000 "
        "(quick: 400 and 1,200 images, 12 epochs, 2,000 test images)"
    ),
}

# chapter -> what the full profile measured on a GPU, with the card and the date
GPU_RESULTS: dict[int, str] = {}


def page_note(chapter: int) -> str:
    """One sentence: the profile, device and network this page ran with, and the full run.

    chapter: the chapter's number (1-18).
    """
    chapter = check_int("chapter", chapter, minimum=1)
    if chapter not in FULL_RUNS:
        raise ValueError(f"chapter must be one of 1-{max(FULL_RUNS)}, got {chapter}")
    active = profile()
    where = f"{device().type.upper()}, {'offline' if is_offline() else 'online'}"
    if active == "full":
        return f"These outputs come from the full profile ({where}): it {FULL_RUNS[chapter]}."
    if FULL_RUNS[chapter] == _SAME:
        return f"These outputs come from the quick profile ({where}); the full profile {_SAME}."
    measured = GPU_RESULTS.get(chapter, "not yet measured on a GPU")
    return (
        f"These outputs come from the quick profile ({where}), small runs that finish in "
        f"seconds. The full profile {FULL_RUNS[chapter]}; its result: {measured}."
    )


def show_page_note(chapter: int) -> None:
    """Show ``page_note(chapter)`` as a paragraph in a notebook, or print it elsewhere.

    The output carries Markdown (Jupyter, Colab and the book render it as wrapped text,
    headed "About these outputs.") and the plain sentence for text-only front ends.
    chapter: the chapter's number (1-18).
    """
    note = page_note(chapter)
    from IPython import get_ipython  # here: the library also runs outside IPython

    if get_ipython() is None:
        print(note)
        return
    from IPython.display import display

    bundle = {"text/markdown": f"**About these outputs.** {note}", "text/plain": note}
    display(bundle, raw=True)
