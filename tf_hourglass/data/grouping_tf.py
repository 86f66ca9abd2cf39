"""Associative Embedding grouping in TensorFlow ops, for graphs (SavedModel serving).

The same four stages as the NumPy ``grouping`` module (the official parser),
with static shapes so that they run inside a ``tf.function`` and a SavedModel:

1. ``find_candidates``: 3x3 non-maximum suppression by max-pooling, then the
   ``max_people`` strongest maxima of every joint type (``tf.math.top_k``:
   equal values go to the lower flat index, as ``grouping``).
2. ``match_candidates``: joint types in the official order
   (``grouping.JOINT_ORDER``); each one's detections above the detection
   threshold join the people found so far (their mean tag) or start new people.
3. ``adjust_people``: the quarter-pixel shift toward the higher neighbour.
4. ``refine_people``: each person's missing joints from the heatmap, preferring
   pixels whose tag is near the person's mean tag.

The assignment of a joint type's detections to people minimises the sum of
the official costs ``100 * round(RMS tag distance) - value``, as the official
Munkres assignment does (``assignment="hungarian"``: the Hungarian algorithm
in ``tf.while_loop`` s). The costs are rounded, so several assignments often
share the least sum; the two algorithms then may pick different ones, and
people differ (``tests/test_grouping_tf.py`` and ``benchmarks/grouping_ap.py``
measure how often, and the AP). ``assignment="greedy"`` (the least cost pair
first, then the least among free rows and columns) is faster and loses AP on
crowds with close tags. Another difference, rare with real tags: the official
code keys a person by the first tag of the joint that started it, so two new
people with exactly equal tags merge; here they stay two people.

Shapes and conventions are those of ``grouping``: NHWC maps, heatmaps
(N, H, W, K), tags (N, H, W, K, D); people (P, K, 3 + D) rows ``x, y, value,
tag_1 .. tag_D``, ``x`` the column and ``y`` the row in heatmap pixels,
``index + 0.5 +- 0.25`` once adjusted; a missing joint is an all-zero row.
Outputs are padded to a fixed number of people with a count, strongest
first (by the person score test.py uses, the mean detection value before
refinement).
"""

from __future__ import annotations

import tensorflow as tf

from tf_hourglass.data.grouping import JOINT_ORDER

ASSIGNMENTS = ("hungarian", "greedy")


def suppress_non_maxima(heatmaps):
    """Heatmaps (N, H, W, K) with every value that is not the maximum of its 3x3 window set to 0.

    Equal neighbours both survive; max-pooling's "same" padding never wins, so
    the window stops at the edges (``grouping.suppress_non_maxima``).
    """
    heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
    window_max = tf.nn.max_pool2d(heatmaps, ksize=3, strides=1, padding="SAME")
    return tf.where(tf.equal(window_max, heatmaps), heatmaps, tf.zeros_like(heatmaps))


def find_candidates(heatmaps, tags, max_people=30):
    """Stage 1: the ``max_people`` strongest local maxima of each joint type.

    Args:
        heatmaps: (N, H, W, K) with static H, W, K.
        tags: (N, H, W, K, D).

    Returns:
        ``values`` (N, K, M) float32, largest first; ``columns``, ``rows``
        (N, K, M) int32; ``tags`` (N, K, M, D); M = min(max_people, H * W).
    """
    heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
    tags = tf.convert_to_tensor(tags, tf.float32)
    _, height, width, num_joints = heatmaps.shape
    dim = tags.shape[-1]
    suppressed = tf.transpose(suppress_non_maxima(heatmaps), [0, 3, 1, 2])
    batch = tf.shape(heatmaps)[0]
    flat = tf.reshape(suppressed, [batch, num_joints, height * width])
    values, index = tf.math.top_k(flat, k=min(int(max_people), height * width), sorted=True)
    rows, columns = index // width, index % width
    flat_tags = tf.reshape(tf.transpose(tags, [0, 3, 1, 2, 4]), [batch, num_joints, height * width, dim])
    candidate_tags = tf.gather(flat_tags, index, axis=2, batch_dims=2)
    return values, columns, rows, candidate_tags


def greedy_assignment(cost, allowed):
    """Person index (M,) int32 of each detection (row), -1 for none; ``cost`` (M, P), ``allowed`` (M, P) bool.

    Repeatedly takes the allowed pair of least cost whose row and column are
    both still free (the lower flat index on ties).
    """
    num_rows, num_columns = tf.shape(cost)[0], tf.shape(cost)[1]
    infinity = tf.constant(float("inf"), tf.float64)
    masked = tf.where(allowed, tf.cast(cost, tf.float64), infinity)
    row_ids = tf.range(num_rows)[:, None]
    column_ids = tf.range(num_columns)[None, :]

    def pending(match, masked):
        return tf.reduce_any(tf.math.is_finite(masked))

    def take_best(match, masked):
        best = tf.cast(tf.argmin(tf.reshape(masked, [-1])), tf.int32)
        row, column = best // num_columns, best % num_columns
        match = tf.tensor_scatter_nd_update(match, [[row]], [column])
        taken = tf.equal(row_ids, row) | tf.equal(column_ids, column)
        return match, tf.where(taken, infinity, masked)

    match, _ = tf.while_loop(pending, take_best, (-tf.ones([num_rows], tf.int32), masked))
    return match


def min_cost_assignment(cost, num_rows):
    """Column (R,) int32 of each of the first ``num_rows`` rows in a minimum-cost assignment; -1 for the rest.

    The Hungarian algorithm with potentials (shortest augmenting paths, one
    row at a time) on ``cost`` (R, C), C >= R, in float64 ``tf.while_loop`` s.
    Where several assignments have the least total cost it may pick another
    one than the ``munkres`` package (``grouping.munkres_assignment``).
    """
    cost = tf.cast(cost, tf.float64)
    num_all_rows, num_columns = cost.shape
    infinity = tf.constant(float("inf"), tf.float64)
    # 1-based rows and columns; column 0 is the algorithm's virtual start.
    padded = tf.pad(cost, [[1, 0], [1, 0]])
    column_ids = tf.range(num_columns + 1)

    def add_row(row, potentials_u, potentials_v, row_of_column, way):
        row_of_column = tf.tensor_scatter_nd_update(row_of_column, [[0]], [row])

        def searching(column, potentials_u, potentials_v, row_of_column, way, min_reduced, used):
            return row_of_column[column] != 0

        def search(column, potentials_u, potentials_v, row_of_column, way, min_reduced, used):
            used = used | tf.equal(column_ids, column)
            reduced = padded[row_of_column[column]] - potentials_u[row_of_column[column]] - potentials_v
            free = tf.logical_not(used) & (column_ids > 0)
            better = free & (reduced < min_reduced)
            min_reduced = tf.where(better, reduced, min_reduced)
            way = tf.where(better, column, way)
            candidates = tf.where(free, min_reduced, infinity)
            next_column = tf.cast(tf.argmin(candidates), tf.int32)
            delta = candidates[next_column]
            potentials_u = tf.tensor_scatter_nd_add(
                potentials_u,
                tf.boolean_mask(row_of_column, used)[:, None],
                tf.fill([tf.reduce_sum(tf.cast(used, tf.int32))], delta),
            )
            potentials_v = tf.where(used, potentials_v - delta, potentials_v)
            min_reduced = tf.where(free, min_reduced - delta, min_reduced)
            return next_column, potentials_u, potentials_v, row_of_column, way, min_reduced, used

        state = (
            tf.constant(0),
            potentials_u,
            potentials_v,
            row_of_column,
            way,
            tf.fill([num_columns + 1], infinity),
            tf.zeros([num_columns + 1], tf.bool),
        )
        column, potentials_u, potentials_v, row_of_column, way, _, _ = tf.while_loop(searching, search, state)

        def augmenting(column, row_of_column):
            return column != 0

        def augment(column, row_of_column):
            previous = way[column]
            return previous, tf.tensor_scatter_nd_update(row_of_column, [[column]], [row_of_column[previous]])

        _, row_of_column = tf.while_loop(augmenting, augment, (column, row_of_column))
        return row + 1, potentials_u, potentials_v, row_of_column, way

    state = (
        tf.constant(1),
        tf.zeros([num_all_rows + 1], tf.float64),
        tf.zeros([num_columns + 1], tf.float64),
        tf.zeros([num_columns + 1], tf.int32),
        tf.zeros([num_columns + 1], tf.int32),
    )
    _, _, _, row_of_column, _ = tf.while_loop(lambda row, *_: row <= num_rows, add_row, state)
    assigned = row_of_column[1:] > 0
    return tf.tensor_scatter_nd_update(
        -tf.ones([num_all_rows + 1], tf.int32),
        tf.boolean_mask(row_of_column[1:], assigned)[:, None],
        tf.boolean_mask(tf.range(num_columns), assigned),
    )[1:]


def _hungarian_match(cost, detected, known, open_to_joints, max_people):
    """Person (M,) of each detection (-1 for none) by the minimum-cost assignment, set up as the official code.

    Its cost matrix is the detections' costs to the ``known`` people padded
    with 1e10 columns (a detection there starts a new person); here people
    beyond ``known`` cost 1e10 too and M columns of 1e10 follow, which has the
    same optimal assignments. Detections are a prefix of the candidates (they
    are sorted by value), so only those rows take part.
    """
    num_candidates = cost.shape[0]
    padding = tf.constant(1e10, tf.float64)
    people = tf.where(
        (tf.range(max_people) < known)[None, :], tf.cast(cost[:, :max_people], tf.float64), padding
    )
    square = tf.concat([people, tf.fill([num_candidates, num_candidates], padding)], axis=1)
    num_detected = tf.reduce_sum(tf.cast(detected, tf.int32))
    columns = tf.cond(
        open_to_joints & (known > 0) & (num_detected > 0),
        lambda: min_cost_assignment(square, num_detected),
        lambda: -tf.ones([num_candidates], tf.int32),
    )
    return tf.where((columns >= 0) & (columns < known), columns, -1)


def match_candidates(
    values,
    columns,
    rows,
    tags,
    detection_threshold=0.1,
    tag_threshold=1.0,
    max_people=30,
    use_detection_value=True,
    skip_when_full=True,
    joint_order=JOINT_ORDER,
    assignment="hungarian",
):
    """Stage 2: one image's candidates -> (people (C, K, 3 + D) float32 unadjusted, number of people).

    Joint types are matched in ``joint_order`` as ``grouping.match_candidates``,
    each with a minimum-cost or greedy ``assignment`` (see the module docstring).

    ``values``, ``columns``, ``rows`` (K, M) and ``tags`` (K, M, D) from
    ``find_candidates``. C = 2 * ``max_people``: the first joint type starts at
    most M <= ``max_people`` people and later ones start people only while fewer
    than ``max_people`` exist, so fewer than 2 * ``max_people`` ever do. Rows
    beyond the count are zero. The order is the official one (people started by
    earlier joint types first).
    """
    values = tf.convert_to_tensor(values, tf.float32)
    tags = tf.convert_to_tensor(tags, tf.float32)
    num_joints, num_candidates = values.shape
    dim = tags.shape[-1]
    capacity = 2 * int(max_people)
    person_ids = tf.range(capacity)
    order = tf.constant(joint_order, tf.int32)

    def match_joint_type(step, joints, tag_sums, tag_counts, count):
        # One loop body for all joint types (not one graph copy each): smaller, faster-loading SavedModels.
        joint_type = order[step]
        value = values[joint_type]
        candidate_tags = tags[joint_type]
        detected = value > detection_threshold
        known = tf.minimum(count, max_people)
        open_to_joints = (known < max_people) if skip_when_full else tf.constant(True)
        means = tag_sums / tf.maximum(tag_counts, 1.0)[:, None]
        distance = tf.sqrt(
            tf.reduce_mean(tf.square(candidate_tags[:, None, :] - means[None, :, :]), axis=-1)
        )  # (M, C)
        cost = tf.cast(distance, tf.float64)  # float64 as the official cost: 100 * k - value keeps its digits
        if use_detection_value:
            cost = tf.round(cost) * 100.0 - tf.cast(value, tf.float64)[:, None]
        if assignment == "greedy":
            allowed = detected[:, None] & (person_ids < known)[None, :] & open_to_joints
            match = greedy_assignment(cost, allowed)
        else:
            match = _hungarian_match(cost, detected, known, open_to_joints, max_people)
        # As the official code: an assignment at the tag threshold or beyond starts a new person instead.
        matched_distance = tf.gather(distance, tf.maximum(match, 0), axis=1, batch_dims=1)
        match = tf.where(matched_distance < tag_threshold, match, -1)
        # Unmatched detections start people, strongest first (with nobody yet, all of them).
        starts = detected & (match < 0) & open_to_joints
        new_ids = count + tf.cumsum(tf.cast(starts, tf.int32)) - 1
        starts = starts & (new_ids < capacity)
        owner = tf.where(match >= 0, match, tf.where(starts, new_ids, -1))  # (M,) person or -1
        has_owner = owner >= 0
        detection_of_person = tf.tensor_scatter_nd_update(
            -tf.ones([capacity], tf.int32),
            tf.boolean_mask(owner, has_owner)[:, None],
            tf.boolean_mask(tf.range(num_candidates), has_owner),
        )
        present = detection_of_person >= 0
        source = tf.maximum(detection_of_person, 0)
        joint = tf.concat(
            [
                tf.cast(tf.gather(columns[joint_type], source), tf.float32)[:, None],
                tf.cast(tf.gather(rows[joint_type], source), tf.float32)[:, None],
                tf.gather(value, source)[:, None],
                tf.gather(candidate_tags, source),
            ],
            axis=-1,
        )
        joints = tf.tensor_scatter_nd_update(
            joints, [[joint_type]], tf.where(present[:, None], joint, 0.0)[None]
        )
        tag_sums += tf.where(present[:, None], tf.gather(candidate_tags, source), 0.0)
        tag_counts += tf.cast(present, tf.float32)
        count += tf.reduce_sum(tf.cast(starts, tf.int32))
        return step + 1, joints, tag_sums, tag_counts, count

    state = (
        tf.constant(0),
        tf.zeros([num_joints, capacity, 3 + dim]),  # per joint type, written once, in joint_order
        tf.zeros([capacity, dim]),
        tf.zeros([capacity]),
        tf.constant(0, tf.int32),
    )
    _, joints, _, _, count = tf.while_loop(lambda step, *_: step < len(joint_order), match_joint_type, state)
    return tf.transpose(joints, [1, 0, 2]), count


def _quarter_steps(heatmaps, rows, columns, joints):
    """The official +-0.25 steps (dx, dy) at int32 pixels of heatmaps (H, W, K), as ``grouping``."""
    height, width = heatmaps.shape[0], heatmaps.shape[1]

    def at(r, c):
        return tf.gather_nd(heatmaps, tf.stack([r, c, joints], axis=-1))

    right = at(rows, tf.minimum(columns + 1, width - 1))
    left = at(rows, tf.maximum(columns - 1, 0))
    below = at(tf.minimum(rows + 1, height - 1), columns)
    above = at(tf.maximum(rows - 1, 0), columns)
    return tf.where(right > left, 0.25, -0.25), tf.where(below > above, 0.25, -0.25)


def adjust_people(people, heatmaps):
    """Stage 3: integer pixels -> ``index + 0.5 +- 0.25`` toward the larger neighbour; missing joints stay 0.

    ``people`` (P, K, 3 + D) of one image, ``heatmaps`` (H, W, K) before suppression.
    """
    num_people, num_joints = tf.shape(people)[0], people.shape[1]
    columns = tf.cast(people[..., 0], tf.int32)
    rows = tf.cast(people[..., 1], tf.int32)
    joints = tf.broadcast_to(tf.range(num_joints)[None, :], [num_people, num_joints])
    dx, dy = _quarter_steps(heatmaps, rows, columns, joints)
    found = people[..., 2] > 0
    x = tf.where(found, tf.cast(columns, tf.float32) + 0.5 + dx, people[..., 0])
    y = tf.where(found, tf.cast(rows, tf.float32) + 0.5 + dy, people[..., 1])
    return tf.concat([x[..., None], y[..., None], people[..., 2:]], axis=-1)


def person_scores(people):
    """Each person's mean detection value over all K joints (missing = 0), as test.py scores them."""
    return tf.reduce_mean(people[..., 2], axis=-1)


def refine_people(people, heatmaps, tags):
    """Stage 4: fill each person's missing joints (``grouping.refine_people``, official ``refine``).

    Per missing joint type, the pixel maximising ``heatmap - round(L2 distance
    of its tag to the person's mean tag)``; if the heatmap there is above 0,
    the joint is set there, adjusted, with value 1 and zero tags.

    Args:
        people: (P, K, 3 + D) adjusted people of one image (all-zero rows for no person).
        heatmaps: (H, W, K).
        tags: (H, W, K, D).
    """
    height, width = heatmaps.shape[:2]
    found = people[..., 2] > 0
    has_joints = tf.reduce_any(found, axis=1)
    found_weights = tf.cast(found, tf.float32)[..., None]
    # The tags stored with each joint are the tag maps' at its pixel.
    mean_tags = tf.reduce_sum(people[..., 3:] * found_weights, axis=1) / tf.maximum(
        tf.reduce_sum(found_weights, axis=1), 1.0
    )  # (P, D)

    # Only the (person, joint) pairs to look for, as the NumPy version: far fewer than all of them.
    pairs = tf.cast(tf.where(tf.logical_not(found) & has_joints[:, None]), tf.int32)  # (J, 2)
    person, joint = pairs[:, 0], pairs[:, 1]
    tag_maps = tf.gather(tf.transpose(tags, [2, 0, 1, 3]), joint)  # (J, H, W, D)
    distance = tf.norm(tag_maps - tf.gather(mean_tags, person)[:, None, None, :], axis=-1)
    score = tf.gather(tf.transpose(heatmaps, [2, 0, 1]), joint) - tf.round(distance)  # (J, H, W)
    best = tf.cast(tf.argmax(tf.reshape(score, [-1, height * width]), axis=1), tf.int32)
    rows, columns = best // width, best % width
    values = tf.gather_nd(heatmaps, tf.stack([rows, columns, joint], axis=-1))
    dx, dy = _quarter_steps(heatmaps, rows, columns, joint)
    keep = values > 0
    refined = tf.concat(
        [
            (tf.cast(columns, tf.float32) + 0.5 + dx)[:, None],
            (tf.cast(rows, tf.float32) + 0.5 + dy)[:, None],
            tf.ones_like(values)[:, None],
            tf.zeros([tf.shape(values)[0], people.shape[-1] - 3]),
        ],
        axis=-1,
    )
    return tf.tensor_scatter_nd_update(people, tf.boolean_mask(pairs, keep), tf.boolean_mask(refined, keep))


def group_people(
    heatmaps,
    tags,
    detection_threshold=0.1,
    tag_threshold=1.0,
    max_people=30,
    use_detection_value=True,
    skip_when_full=True,
    refine=True,
    joint_order=None,
    assignment="hungarian",
):
    """People from heatmaps and tag maps in graph ops, padded to ``max_people``, strongest first.

    The defaults are the official test.py's (``grouping.TEST_SETTINGS``:
    detection threshold 0.1, refinement; always adjusted).

    Args:
        heatmaps: (N, H, W, K) float32 with static H, W, K.
        tags: (N, H, W, K) or (N, H, W, K, D).
        detection_threshold, tag_threshold, max_people, use_detection_value,
            skip_when_full, joint_order: as ``grouping.group_people``.
        refine: fill missing joints (``refine_people``).
        assignment: "hungarian" (a minimum-cost assignment, as the official
            Munkres) or "greedy" (see the module docstring).

    Returns:
        ``people`` (N, max_people, K, 3 + D) float32, sorted by score, zero rows
        beyond the count; ``scores`` (N, max_people) float32 (before refinement,
        as test.py); ``num_people`` (N,) int32 (at most ``max_people``: the
        strongest are kept).
    """
    heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
    tags = tf.convert_to_tensor(tags, tf.float32)
    if tags.shape.rank == 4:
        tags = tags[..., None]
    if heatmaps.shape.rank != 4 or tags.shape.rank != 5 or None in heatmaps.shape[1:] + tags.shape[1:]:
        raise ValueError(
            "heatmaps must be (N, H, W, K) and tags (N, H, W, K[, D]) with static H, W, K, D; "
            f"got shapes {heatmaps.shape} and {tags.shape}."
        )
    num_joints = heatmaps.shape[3]
    if joint_order is None:
        joint_order = JOINT_ORDER if num_joints == len(JOINT_ORDER) else tuple(range(num_joints))
    if sorted(joint_order) != list(range(num_joints)):
        raise ValueError(f"joint_order must be a permutation of 0 .. {num_joints - 1}, got {joint_order}.")
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}.")
    max_people = int(max_people)
    if max_people < 1:
        raise ValueError(f"max_people must be at least 1, got {max_people}.")
    values, columns, rows, candidate_tags = find_candidates(heatmaps, tags, max_people)
    dim = tags.shape[-1]

    def group_one(image):
        image_values, image_columns, image_rows, image_tags, image_heatmaps, image_tag_maps = image
        people, count = match_candidates(
            image_values,
            image_columns,
            image_rows,
            image_tags,
            detection_threshold=detection_threshold,
            tag_threshold=tag_threshold,
            max_people=max_people,
            use_detection_value=use_detection_value,
            skip_when_full=skip_when_full,
            joint_order=joint_order,
            assignment=assignment,
        )
        people = adjust_people(people, image_heatmaps)
        exists = tf.range(tf.shape(people)[0]) < count
        # Stable: equal scores keep the official order.
        scores = tf.where(exists, person_scores(people), -1.0)
        order = tf.argsort(scores, direction="DESCENDING", stable=True)[:max_people]
        people, scores = tf.gather(people, order), tf.gather(scores, order)
        kept = tf.minimum(count, max_people)
        if refine:
            people = refine_people(people, image_heatmaps, image_tag_maps)
        exists = tf.range(max_people) < kept
        people = tf.where(exists[:, None, None], people, 0.0)
        return people, tf.where(exists, scores, 0.0), kept

    return tf.map_fn(
        group_one,
        (values, columns, rows, candidate_tags, heatmaps, tags),
        fn_output_signature=(
            tf.TensorSpec([max_people, num_joints, 3 + dim], tf.float32),
            tf.TensorSpec([max_people], tf.float32),
            tf.TensorSpec([], tf.int32),
        ),
    )
