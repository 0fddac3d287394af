import json

from components.s3_policy import HARBOR_ACTIONS, policy_document, policy_json


def test_exactly_the_eight_seed_actions_split_between_bucket_and_objects():
    doc = policy_document("harbor-chi")
    by_resource = {tuple(s["Resource"]): set(s["Action"]) for s in doc["Statement"]}
    assert by_resource == {
        ("arn:aws:s3:::harbor-chi",): {
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:ListBucketMultipartUploads",
        },
        ("arn:aws:s3:::harbor-chi/*",): {
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        },
    }
    assert len(HARBOR_ACTIONS) == 8
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])


def test_policy_json_is_stable_text():
    assert policy_json("b") == policy_json("b")
    assert json.loads(policy_json("b")) == policy_document("b")
