"""Associative Embedding grouping: per-joint heatmaps and tag maps -> people.

The bottom-up decoding of Newell, Huang and Deng, "Associative Embedding"
(NeurIPS 2017), equal to the official parser (pose-ae-train, ``utils/group.py``
``HeatmapParser.parse`` and ``test.py``'s ``refine``) with the options that
``test.py`` uses, in NumPy only. It runs in four stages, each a
public function, so that a TensorFlow port can mirror them one by one:

1. ``find_candidates``: 3x3 non-maximum suppression, then the ``max_people``
   strongest maxima of every joint type (value, pixel, tag).
2. ``match_candidates``: joint types in the official order; each one's
   detections above ``detection_threshold`` are assigned to the people found so
   far (Hungarian assignment on the tag distances) or start new people.
3. ``adjust_people``: the quarter-pixel shift toward the higher neighbour.
4. ``refine_people``: fills each person's missing joints from the heatmap,
   preferring pixels whose tag is near the person's mean tag.

``combine_test_outputs`` merges flip-test and multi-scale network outputs into
the maps these take, as test.py does. Typical use (flip test, one scale)::

    heatmaps, tags = combine_test_outputs(
        [heatmaps], [mirror_heatmaps], tags, mirror_tags, COCO.flip_permutation()
    )
    people, scores = group_people(heatmaps, tags, return_scores=True)

Layouts: NHWC, as the rest of the package. ``heatmaps`` (N, H, W, K), ``tags``
(N, H, W, K) or (N, H, W, K, D) (D tag maps per joint, e.g. the original and
the mirrored image's in flip test). Each image's people are a float32 array
(P, K, 3 + D), one row per joint: ``x, y, value, tag_1 .. tag_D`` (the official
parser's layout); a missing joint is an all-zero row.

Pixel convention: ``x`` is the column and ``y`` the row, in heatmap pixels.
Without ``adjust`` they are the integer indices of the maximum (pixel centres at
integers). With ``adjust`` (the default, as the official parser) they are
``index + 0.5 +- 0.25``: the official code adds 0.5, i.e. its coordinates put
pixel ``i`` over ``[i, i + 1)``, and moves a quarter pixel toward the larger
neighbour. Refined joints follow the same convention. To map to image pixels
the official ``test.py`` multiplies by 4 (input / heatmap size) and applies the
inverse crop affine, with no further half-pixel shift. In this package's
convention (``codec.py``: pixel centres at integers, pixel edges of input and
heatmap aligned) an adjusted ``x`` is heatmap position ``x - 0.5`` and input
pixel ``stride * x - 0.5``.

Person order is the official one: people started by the first joint type in
``JOINT_ORDER`` come first, strongest first, then people started by later joint
types in the order they were started. Where heatmap values tie exactly, the
official order follows ``torch.topk``'s internal order, which is unspecified;
we take the lower flat index (row-major) first.
"""

from __future__ import annotations

import numpy as np

# The order in which the official parser visits joint types (COCO's 17):
# head and shoulders, then the hips, then the limbs (``Params.partOrder``).
JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)

# The official cost padding for detections beyond the number of people.
_NEW_PERSON_COST = 1e10


def _check_maps(heatmaps, tags):
    heatmaps = np.asarray(heatmaps, np.float32)
    tags = np.asarray(tags, np.float32)
    received = tags.shape
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, H, W, K), got shape {heatmaps.shape}.")
    if tags.ndim == 4:
        tags = tags[..., None]
    if tags.ndim != 5 or tags.shape[:4] != heatmaps.shape or tags.shape[4] < 1:
        raise ValueError(
            f"tags must be (N, H, W, K) or (N, H, W, K, D) with (N, H, W, K) = {heatmaps.shape}, "
            f"got shape {received}."
        )
    return heatmaps, tags


def suppress_non_maxima(heatmaps):
    """Heatmaps (N, H, W, K) with every value that is not the maximum of its 3x3 window set to 0.

    Equal neighbours both survive (a plateau keeps all its pixels), as the
    official ``MaxPool2d(3, 1, 1)`` comparison does; the window stops at the edges.
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    # The 3x3 maximum as a 3-row maximum, then a 3-column maximum of that.
    rows_max = heatmaps.copy()
    rows_max[:, 1:] = np.maximum(rows_max[:, 1:], heatmaps[:, :-1])
    rows_max[:, :-1] = np.maximum(rows_max[:, :-1], heatmaps[:, 1:])
    window_max = rows_max.copy()
    window_max[:, :, 1:] = np.maximum(window_max[:, :, 1:], rows_max[:, :, :-1])
    window_max[:, :, :-1] = np.maximum(window_max[:, :, :-1], rows_max[:, :, 1:])
    return np.where(window_max == heatmaps, heatmaps, np.float32(0))


def _top_k_indices(flat, k):
    """Indices (R, k) of the k largest values of each row of ``flat`` (R, M), largest first.

    Equal values go to the lower index. argpartition picks arbitrarily among
    values equal to the k-th largest (after suppression, usually the many
    zeros), so rows where such values straddle the cut are redone exactly.
    """
    rows = np.arange(flat.shape[0])[:, None]
    if k < flat.shape[1]:
        top = np.argpartition(-flat, k - 1, axis=1)[:, :k]
        kth = flat[rows, top].min(axis=1, keepdims=True)
        at_kth = flat == kth
        straddling = at_kth.sum(axis=1) > (flat[rows, top] == kth).sum(axis=1)
        for r in np.flatnonzero(straddling):
            above = np.flatnonzero(flat[r] > kth[r])
            top[r] = np.concatenate([above, np.flatnonzero(at_kth[r])[: k - len(above)]])
    else:
        top = np.broadcast_to(np.arange(flat.shape[1]), flat.shape)
    order = np.lexsort((top, -flat[rows, top]), axis=1)
    return np.take_along_axis(top, order, axis=1)


def find_candidates(heatmaps, tags, max_people=30):
    """Stage 1: the ``max_people`` strongest local maxima of each joint type.

    Args:
        heatmaps: (N, H, W, K).
        tags: (N, H, W, K) or (N, H, W, K, D).
        max_people: candidates kept per joint type (fewer if H * W is smaller).

    Returns:
        ``values`` (N, K, M) float32, largest first (0 where fewer maxima exist);
        ``columns``, ``rows`` (N, K, M) int64 pixel indices; ``tags`` (N, K, M, D).
    """
    heatmaps, tags = _check_maps(heatmaps, tags)
    n, h, w, k = heatmaps.shape
    suppressed = suppress_non_maxima(heatmaps)
    flat = suppressed.transpose(0, 3, 1, 2).reshape(n * k, h * w)
    index = _top_k_indices(flat, min(int(max_people), h * w))
    values = np.take_along_axis(flat, index, axis=1).reshape(n, k, -1)
    index = index.reshape(n, k, -1)
    rows, columns = np.divmod(index, w)
    images = np.arange(n)[:, None, None]
    joints = np.arange(k)[None, :, None]
    candidate_tags = tags[images, rows, columns, joints]  # (N, K, M, D)
    return values, columns, rows, candidate_tags


def munkres_assignment(cost):
    """Minimum-cost assignment of rows to columns, equal to the ``munkres`` package's.

    ``scipy.optimize.linear_sum_assignment`` finds an optimum too, but when
    several assignments tie (common here: the official cost rounds tag
    distances to whole units) it often picks another one than ``munkres``,
    which changes who gets a joint. This is the classic Munkres algorithm with
    the package's scan order and arithmetic, so ties resolve as it does
    (checked against munkres 1.0.12, of the official code's time, and 1.1.4;
    munkres 3 is another algorithm and resolves ties differently again).

    Args:
        cost: (R, C) float array; a non-square matrix is padded with zeros.

    Returns:
        (row, column) pairs sorted by row, one per row if R <= C, else one per column.
    """
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2 or not np.all(np.isfinite(cost)):
        raise ValueError(f"cost must be a 2-D array of finite numbers, got shape {cost.shape}.")
    rows, cols = cost.shape
    n = max(rows, cols)
    c = np.zeros((n, n))
    c[:rows, :cols] = cost
    c -= c.min(axis=1, keepdims=True)  # step 1
    starred = np.zeros((n, n), bool)
    primed = np.zeros((n, n), bool)
    row_covered = np.zeros(n, bool)
    col_covered = np.zeros(n, bool)
    for i in range(n):  # step 2: star the first zero of each row whose column has none yet
        free = np.flatnonzero((c[i] == 0) & ~col_covered)
        if free.size:
            starred[i, free[0]] = True
            col_covered[free[0]] = True
    while True:
        col_covered = starred.any(axis=0)  # step 3
        row_covered[:] = False
        if col_covered.sum() >= n:
            break
        row, col = 0, 0
        while True:  # step 4
            row, col = _find_uncovered_zero(c, row_covered, col_covered, row, col)
            if row < 0:  # step 6: make a new zero, then back to step 4
                smallest = c[~row_covered][:, ~col_covered].min()
                c[row_covered] += smallest
                c[:, ~col_covered] -= smallest
                row, col = 0, 0
                continue
            primed[row, col] = True
            star_col = np.flatnonzero(starred[row])
            if star_col.size == 0:
                break
            col = int(star_col[0])
            row_covered[row] = True
            col_covered[col] = False
        path = [(row, col)]  # step 5: alternate starred and primed zeros
        while True:
            star_row = np.flatnonzero(starred[:, path[-1][1]])
            if star_row.size == 0:
                break
            path.append((int(star_row[0]), path[-1][1]))
            path.append((path[-1][0], int(np.flatnonzero(primed[path[-1][0]])[0])))
        for path_row, path_col in path:
            starred[path_row, path_col] = not starred[path_row, path_col]
        primed[:] = False
    pairs = np.argwhere(starred[:rows, :cols])
    return [(int(r), int(k)) for r, k in pairs]


def _find_uncovered_zero(c, row_covered, col_covered, row0, col0):
    """``munkres``' search: the first row from ``row0`` on (cyclically) with an uncovered
    zero, and in it the last such zero scanning cyclically from ``col0``."""
    n = c.shape[0]
    zeros = (c == 0) & ~row_covered[:, None] & ~col_covered[None, :]
    row_order = np.roll(np.arange(n), -row0)
    hits = np.flatnonzero(zeros[row_order].any(axis=1))
    if hits.size == 0:
        return -1, -1
    row = int(row_order[hits[0]])
    col_order = np.roll(np.arange(n), -col0)
    return row, int(col_order[np.flatnonzero(zeros[row, col_order])[-1]])


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
):
    """Stage 2: one image's candidates -> people (P, K, 3 + D) float32, unadjusted integer pixels.

    Follows the official ``match_by_tag``: joint types are visited in
    ``joint_order``; the first with any detection above ``detection_threshold``
    starts one person per detection. Each later type's detections are assigned
    to the first ``max_people`` people (their mean tag so far) by the Munkres
    assignment on the RMS tag distance, as cost ``100 * round(distance) -
    value`` with ``use_detection_value`` (else the distance itself); an
    assignment farther than ``tag_threshold`` starts a new person instead. With
    ``skip_when_full`` a joint type is skipped once ``max_people`` people exist.

    As in the official code a person is keyed by the first tag of the joint that
    started it: a new person whose key equals an existing one's (exact float
    equality) overwrites that person's joint and restarts its tag mean.

    Args:
        values, columns, rows: (K, M) from ``find_candidates`` (one image).
        tags: (K, M, D).
    """
    num_joints = values.shape[0]
    dim = tags.shape[-1]
    joints_of_type = np.concatenate(
        [columns[..., None].astype(np.float64), rows[..., None], values[..., None], tags], axis=-1
    )
    people = []  # (K, 3 + D) float64 each, in the official insertion order
    person_tags = []  # each person's list of joint tags, for the mean
    person_means = []  # their means, None when stale (np.mean of the list, as the official code)
    key_to_person = {}

    def tags_32(joint):
        return joint[3:].astype(np.float32)

    def start_person(joint_type, joint):
        key = float(joint[3])
        if key not in key_to_person:
            key_to_person[key] = len(people)
            people.append(np.zeros((num_joints, 3 + dim)))
            person_tags.append(None)
            person_means.append(None)
        index = key_to_person[key]
        people[index][joint_type] = joint
        person_tags[index] = [tags_32(joint)]
        person_means[index] = None

    for joint_type in joint_order:
        joints = joints_of_type[joint_type][values[joint_type] > detection_threshold]
        if not people:
            for joint in joints:
                start_person(joint_type, joint)
            continue
        known = min(len(people), max_people)
        if skip_when_full and known == max_people:
            continue
        if len(joints) == 0:
            continue
        for p in range(known):
            if person_means[p] is None:
                person_means[p] = np.mean(person_tags[p], axis=0)
        mean_tags = np.array(person_means[:known])
        distance = ((joints[:, None, 3:] - mean_tags[None, :, :]) ** 2).mean(axis=2) ** 0.5
        cost = np.round(distance) * 100 - joints[:, 2:3] if use_detection_value else distance
        if cost.shape[0] > cost.shape[1]:
            padding = np.full((cost.shape[0], cost.shape[0] - cost.shape[1]), _NEW_PERSON_COST)
            cost = np.concatenate([cost, padding], axis=1)
        for row, col in munkres_assignment(cost):
            if col < known and distance[row, col] < tag_threshold:
                people[col][joint_type] = joints[row]
                person_tags[col].append(tags_32(joints[row]))
                person_means[col] = None
            else:
                start_person(joint_type, joints[row])
    if not people:
        return np.zeros((0, num_joints, 3 + dim), np.float32)
    return np.array(people, np.float32)


def _quarter_steps(heatmaps, rows, columns, joints):
    """The official +-0.25 steps (dx, dy) at pixels (rows, columns) of heatmaps (H, W, K)
    ``joints``: toward the larger neighbour (clamped at the edges), -0.25 when equal."""
    h, w = heatmaps.shape[:2]
    right = heatmaps[rows, np.minimum(columns + 1, w - 1), joints]
    left = heatmaps[rows, np.maximum(columns - 1, 0), joints]
    below = heatmaps[np.minimum(rows + 1, h - 1), columns, joints]
    above = heatmaps[np.maximum(rows - 1, 0), columns, joints]
    return np.where(right > left, 0.25, -0.25), np.where(below > above, 0.25, -0.25)


def adjust_people(people, heatmaps):
    """Stage 3: integer pixels -> ``index + 0.5 +- 0.25`` toward the larger neighbour (official ``adjust``).

    Args:
        people: (P, K, 3 + D) from ``match_candidates``; not modified.
        heatmaps: (H, W, K), the heatmaps before suppression.
    """
    people = np.array(people, np.float32)
    person, joint = np.nonzero(people[:, :, 2] > 0)
    columns = people[person, joint, 0].astype(np.int64)
    rows = people[person, joint, 1].astype(np.int64)
    dx, dy = _quarter_steps(np.asarray(heatmaps, np.float32), rows, columns, joint)
    people[person, joint, 0] = columns + 0.5 + dx
    people[person, joint, 1] = rows + 0.5 + dy
    return people


def refine_people(people, heatmaps, tags):
    """Stage 4: fill missing joints (official ``test.py`` ``refine``).

    For each person, the mean of its joints' tags (read at their pixels); for
    each missing joint type, the pixel maximising ``heatmap - round(L2 tag
    distance to that mean)``. If the heatmap there is above 0 the joint is set
    there, adjusted as in ``adjust_people``, with value 1 and zero tags (as the
    official code leaves them).

    One difference from the official code: its ``refine`` clamps the row below
    at ``K - 1`` and the column to the right at ``H - 1`` (it takes them from
    the shape of the (K, H, W) stack), so at rows >= K - 1 its vertical quarter
    step compares the wrong pixels. We clamp at the map's own edges (H - 1,
    W - 1), as ``adjust`` does.

    Args:
        people: (P, K, 3 + D) adjusted people of one image; not modified.
        heatmaps: (H, W, K).
        tags: (H, W, K) or (H, W, K, D).
    """
    people = np.array(people, np.float32)
    heatmaps = np.asarray(heatmaps, np.float32)
    tags = np.asarray(tags, np.float32)
    if tags.ndim == 3:
        tags = tags[..., None]
    found = people[:, :, 2] > 0
    has_joints = found.any(axis=1)
    person, joint = np.nonzero(~found & has_joints[:, None])  # the joints to look for
    if len(joint) == 0:
        return people
    mean_tags = np.zeros((len(people), tags.shape[-1]), np.float32)
    for p in np.flatnonzero(has_joints):
        joints = np.flatnonzero(found[p])
        columns = people[p, joints, 0].astype(np.int32)
        rows = people[p, joints, 1].astype(np.int32)
        mean_tags[p] = np.mean(tags[rows, columns, joints], axis=0)
    by_joint = np.ascontiguousarray(tags.transpose(2, 3, 0, 1))  # (K, D, H, W): contiguous maps
    maps = np.ascontiguousarray(heatmaps.transpose(2, 0, 1))  # (K, H, W)
    best = np.zeros(len(joint), np.int64)
    for k in np.unique(joint):  # one joint type at a time: its maps broadcast against its people's means
        pairs = np.flatnonzero(joint == k)
        means = mean_tags[person[pairs]][:, :, None, None]  # (J, D, 1, 1)
        squared = np.zeros((len(pairs),) + heatmaps.shape[:2], np.float32)
        difference = np.empty_like(squared)
        for d in range(tags.shape[-1]):  # summed in the official order, for equal float32 values
            np.subtract(by_joint[k, d], means[:, d], out=difference)
            np.multiply(difference, difference, out=difference)
            squared += difference
        np.sqrt(squared, out=squared)
        np.round(squared, out=squared)
        np.subtract(maps[k], squared, out=squared)
        best[pairs] = squared.reshape(len(pairs), -1).argmax(axis=1)
    best_rows, best_columns = np.divmod(best, heatmaps.shape[1])
    values = heatmaps[best_rows, best_columns, joint]
    dx, dy = _quarter_steps(heatmaps, best_rows, best_columns, joint)
    keep = values > 0
    people[person[keep], joint[keep]] = 0.0
    people[person[keep], joint[keep], 0] = best_columns[keep] + 0.5 + dx[keep]
    people[person[keep], joint[keep], 1] = best_rows[keep] + 0.5 + dy[keep]
    people[person[keep], joint[keep], 2] = 1.0
    return people


# What the official test.py uses (HeatmapParser(detection_val=0.1), then refine): our evaluation's settings.
TEST_SETTINGS = {"detection_threshold": 0.1, "refine": True}


def group_people(
    heatmaps,
    tags,
    detection_threshold=0.03,
    tag_threshold=1.0,
    max_people=30,
    use_detection_value=True,
    skip_when_full=True,
    adjust=True,
    refine=False,
    joint_order=None,
    return_scores=False,
):
    """People from Associative Embedding heatmaps and tag maps, as the official parser finds them.

    The defaults are the official ``HeatmapParser()``'s, so this drops in where
    it is used: detection threshold 0.03, tag threshold 1, at most 30 people,
    the detection value in the cost and ``ignore_too_much`` (``skip_when_full``);
    ``parse`` adjusts by default and does not refine. The official evaluation
    (``test.py``) builds ``HeatmapParser(detection_val=0.1)`` and then refines
    every person: ``group_people(..., **TEST_SETTINGS)``.

    Args:
        heatmaps: (N, H, W, K) NumPy array (cast to float32), after any flip /
            multi-scale merging (``combine_test_outputs``).
        tags: (N, H, W, K) or (N, H, W, K, D).
        detection_threshold: a maximum counts as a detection above this value.
        tag_threshold: the largest RMS tag distance at which a detection joins a person.
        max_people: candidates per joint type, and people matched against.
        use_detection_value: cost ``100 * round(distance) - value`` instead of the distance.
        skip_when_full: skip joint types once ``max_people`` people exist.
        adjust: quarter-pixel adjustment and the +0.5 shift (see the module docstring).
        refine: fill missing joints as ``refine_people``; needs ``adjust``.
        joint_order: the order joint types are matched in; by default ``JOINT_ORDER``
            for 17 joints (COCO), else 0 .. K - 1.
        return_scores: also return each person's score as test.py computes it
            (``person_scores`` before refinement).

    Returns:
        A list of N float32 arrays (P, K, 3 + D): x, y, value, tags per joint;
        with ``return_scores``, also a list of N float32 arrays (P,) of scores.
    """
    heatmaps, tags = _check_maps(heatmaps, tags)
    if refine and not adjust:
        raise ValueError(
            "refine=True needs adjust=True (refine reads adjusted coordinates), got adjust=False."
        )
    num_joints = heatmaps.shape[3]
    if joint_order is None:
        joint_order = JOINT_ORDER if num_joints == len(JOINT_ORDER) else tuple(range(num_joints))
    if sorted(joint_order) != list(range(num_joints)):
        raise ValueError(f"joint_order must be a permutation of 0 .. {num_joints - 1}, got {joint_order}.")
    if int(max_people) < 1:
        raise ValueError(f"max_people must be at least 1, got {max_people}.")
    values, columns, rows, candidate_tags = find_candidates(heatmaps, tags, max_people)
    results, scores = [], []
    for image in range(heatmaps.shape[0]):
        people = match_candidates(
            values[image],
            columns[image],
            rows[image],
            candidate_tags[image],
            detection_threshold=detection_threshold,
            tag_threshold=tag_threshold,
            max_people=max_people,
            use_detection_value=use_detection_value,
            skip_when_full=skip_when_full,
            joint_order=joint_order,
        )
        if adjust:
            people = adjust_people(people, heatmaps[image])
        scores.append(person_scores(people))
        if refine:
            people = refine_people(people, heatmaps[image], tags[image])
        results.append(people)
    return (results, scores) if return_scores else results


def person_scores(people):
    """Each person's score as test.py computes it: the mean detection value over all K joints (missing = 0).

    test.py scores people before ``refine``, which sets refined joints' value to
    1: ``group_people(..., return_scores=True)`` does that.
    """
    people = np.asarray(people, np.float32)
    return people[:, :, 2].mean(axis=1) if len(people) else np.zeros((0,), np.float32)


def unflip_maps(maps, flip_permutation):
    """Maps (N, H, W, K, ...) computed on mirrored images -> maps of the original images.

    Mirrors the columns and swaps left and right joints (``flip_permutation``,
    e.g. ``keypoint_specs.COCO.flip_permutation()``, the official ``flipRef``).
    Like the official test.py, no pixel shift: column ``j`` maps to ``W - 1 - j``.
    """
    maps = np.asarray(maps)
    return np.take(maps[:, :, ::-1], np.asarray(flip_permutation), axis=3)


def resize_maps(maps, height, width):
    """Bilinear resize of maps (N, h, w, ...) to (N, height, width, ...) (OpenCV's INTER_LINEAR).

    Pixel centres are aligned (output pixel ``i`` samples ``(i + 0.5) * h / height - 0.5``)
    and samples beyond the edge take the edge pixel, as ``cv2.resize`` does,
    which the official test.py uses.
    """
    maps = np.asarray(maps, np.float32)
    for axis, size in ((1, int(height)), (2, int(width))):
        old = maps.shape[axis]
        if old == size:
            continue
        position = np.clip((np.arange(size) + 0.5) * (old / size) - 0.5, 0, old - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, old - 1)
        weight = (position - low).astype(np.float32).reshape((-1,) + (1,) * (maps.ndim - axis - 1))
        maps = np.take(maps, low, axis=axis) * (1 - weight) + np.take(maps, high, axis=axis) * weight
    return maps


def combine_test_outputs(
    heatmaps, flipped_heatmaps, tags, flipped_tags, flip_permutation, tag_scale_index=0, max_heatmap_sum=10.0
):
    """The official test.py's flip-test and multi-scale merge -> the maps ``group_people`` takes.

    Per scale, the heatmaps of the image and of its mirror (unflipped) are
    summed; the sums are resized to the first scale's size, added, divided by
    2 x the number of scales and clipped at 1. The tags are those of one scale
    (test.py keeps the scale-1 output's), the image's and the mirror's, resized
    to the same size and stacked: D = 2. As test.py, a scale whose summed pair
    exceeds ``max_heatmap_sum`` somewhere is left out of the sum (still counted
    in the divisor); if that is the tags' scale, the image gets zero heatmaps
    (nobody). One difference: test.py then sizes the maps by the first scale it
    kept, we always by the first scale.

    Args:
        heatmaps, flipped_heatmaps: one array (N, h, w, K) per scale (lists of
            equal length), the network's last-stack heatmaps on the images and on
            their mirrors; test.py's scales are 2, 1, 0.5 in that order.
        tags, flipped_tags: (N, h, w, K) tag maps of scale ``tag_scale_index``.
        flip_permutation: the joints' mirror permutation (see ``unflip_maps``).
        tag_scale_index: which scale ``tags`` come from (1 for test.py's multi-scale, 0 for single scale).
        max_heatmap_sum: test.py's 10.

    Returns:
        heatmaps (N, H, W, K) float32 and tags (N, H, W, K, 2) float32, (H, W) the first scale's size.
    """
    if not isinstance(heatmaps, (list, tuple)):
        heatmaps, flipped_heatmaps = [heatmaps], [flipped_heatmaps]
    if len(heatmaps) != len(flipped_heatmaps) or not heatmaps:
        raise ValueError(
            f"heatmaps and flipped_heatmaps must list the same scales, got {len(heatmaps)} "
            f"and {len(flipped_heatmaps)} arrays."
        )
    if not 0 <= tag_scale_index < len(heatmaps):
        raise ValueError(
            f"tag_scale_index must index one of the {len(heatmaps)} scales, got {tag_scale_index}."
        )
    height, width = np.shape(heatmaps[0])[1:3]
    total = 0
    tag_scale_kept = None
    for scale, (plain, flipped) in enumerate(zip(heatmaps, flipped_heatmaps, strict=True)):
        plain = np.asarray(plain, np.float32)
        if plain.ndim != 4 or np.shape(flipped) != plain.shape:
            raise ValueError(
                f"heatmaps and flipped_heatmaps of scale {scale} must be equal (N, h, w, K) shapes, "
                f"got {plain.shape} and {np.shape(flipped)}."
            )
        pair = plain + unflip_maps(np.asarray(flipped, np.float32), flip_permutation)
        kept = pair.reshape(len(pair), -1).max(axis=1) <= max_heatmap_sum
        total = total + resize_maps(pair, height, width) * kept[:, None, None, None]
        if scale == tag_scale_index:
            tag_scale_kept = kept
    tags = np.asarray(tags, np.float32)
    if tags.ndim != 4 or np.shape(flipped_tags) != tags.shape:
        raise ValueError(
            f"tags and flipped_tags must be equal (N, h, w, K) shapes, got {tags.shape} and {np.shape(flipped_tags)}."
        )
    both_tags = np.stack(
        [
            resize_maps(tags, height, width),
            resize_maps(unflip_maps(np.asarray(flipped_tags, np.float32), flip_permutation), height, width),
        ],
        axis=-1,
    )
    combined = np.minimum(total / np.float32(2 * len(heatmaps)), np.float32(1))
    return combined * tag_scale_kept[:, None, None, None], both_tags
