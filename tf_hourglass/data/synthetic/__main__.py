"""``python -m tf_hourglass.data.synthetic --output DIR [--num-examples N] [--scenes]``."""

from __future__ import annotations

import sys

from tf_hourglass.data.synthetic.writer import write_custom_dataset, write_custom_scenes


def main(argv: list[str] | None = None) -> int:
    """``python -m tf_hourglass.data.synthetic --output DIR [--num-examples N]``: writes a custom-format dataset.

    Follows the command convention of ``tf_hourglass/cli.py``; returns the exit status.
    """
    from absl import flags

    from tf_hourglass.cli import fail, parse_flags

    flag_values = flags.FlagValues()
    flags.DEFINE_string("output", None, "Output folder.", flag_values=flag_values)
    flags.DEFINE_integer(
        "num_examples", 1000, "Number of examples to write.", lower_bound=1, flag_values=flag_values
    )
    flags.DEFINE_integer("seed", 0, "Dataset seed.", flag_values=flag_values)
    flags.DEFINE_integer(
        "image_size", 256, "Side of the square images, in pixels.", lower_bound=16, flag_values=flag_values
    )
    flags.DEFINE_integer("start", 0, "Index of the first example.", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_bool(
        "scenes",
        False,
        "Write multi-person scenes (1 to 8 figures, COCO keypoints, one annotation per person) "
        "for bottom-up training instead of single figures.",
        flag_values=flag_values,
    )
    flags.mark_flag_as_required("output", flag_values=flag_values)
    doc = "Writes synthetic figures as a custom-format dataset (annotations.json and images)."
    status = parse_flags("synthetic", flag_values, list(sys.argv if argv is None else argv), doc)
    if status is not None:
        return status
    try:
        write = write_custom_scenes if flag_values.scenes else write_custom_dataset
        path = write(
            flag_values.output,
            flag_values.num_examples,
            seed=flag_values.seed,
            image_size=flag_values.image_size,
            start=flag_values.start,
        )
    except (ValueError, OSError) as error:
        return fail("synthetic", error)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
