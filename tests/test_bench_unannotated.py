"""benchmarks.bench_unannotated on a hand-made set: the counts and APs worked out by hand."""
import json

from helpers import make_voc_folder

from benchmarks import bench_unannotated


def test_counts_and_aps_of_a_set_with_an_image_left_unannotated(tmp_path):
    # test images a and b hold one 'cell' each; c holds only a 'blob' (its cells were never boxed)
    images = {"a": ([("cell", 11, 11, 50, 50)], 100, 80), "b": ([("cell", 21, 21, 60, 60)], 100, 80),
              "c": ([("blob", 31, 31, 70, 70)], 100, 80), "t": ([("blob", 5, 5, 40, 40)], 100, 80)}
    make_voc_folder(tmp_path / "set", images, {"trainval": ["t"], "test": ["a", "b", "c"]})
    results = tmp_path / "eval"
    results.mkdir()
    # devkit pixels: a's box found (0.9); c's unboxed cell (0.8); b's box found (0.6); a miss on b (0.55);
    # b's box again (0.3, a duplicate); the blob found (0.7)
    (results / "comp4_det_test_cell.txt").write_text(
        "a 0.9 11 11 50 50\nc 0.8 5 5 30 30\nb 0.6 21 21 60 60\nb 0.55 70 10 95 30\nb 0.3 22 22 60 60\n")
    (results / "comp4_det_test_blob.txt").write_text("c 0.7 31 31 70 70\n")
    out = tmp_path / "gaps.json"
    bench_unannotated.main(["--dataset-root", str(tmp_path / "set"), "--class-names", "cell", "blob",
                            "--sets", "trainval", "--test-sets", "test", "--results", str(results),
                            "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["training_images_without_a_box"] == {"cell": 1, "blob": 0}
    cell, blob = record["runs"][str(results)]
    assert cell["test_images_without_a_box"] == 1 and cell["first_without"] == ["c"]
    # all images, by score: hit, FP (c), hit -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    # VOC07 11 points: recall <= 0.5 -> 1 (6 points), above -> 2/3 (5 points)
    assert abs(cell["ap_all_test_images"] - (6 * 1 + 5 * 2 / 3) / 11) < 1e-9
    assert cell["ap_test_images_with_a_box"] == 1.0  # without c: hit, hit first
    # scoring >= 0.5: 0.9 hit, 0.8 on c, 0.6 hit, 0.55 miss -> 4 confident, 2 matching no box, 1 on c
    assert (cell["confident"], cell["confident_matching_no_box"], cell["confident_on_images_without_a_box"]) == \
        (4, 2, 1)
    assert (blob["confident"], blob["confident_matching_no_box"], blob["test_images_without_a_box"]) == (1, 0, 2)
