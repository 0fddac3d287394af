"""The least-privilege S3 policy Harbor's registry storage driver needs.

Pure Python on purpose: the Pulumi program exports it as ``s3PolicyJson`` and
``harborops s3 verify`` checks live credentials against the same eight actions,
so the two can never disagree. The list is the seed's, found by trial and error
with broken pushes.
"""

from __future__ import annotations

import json

#: Actions granted on the bucket ARN itself.
BUCKET_ACTIONS: tuple[str, ...] = (
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
)

#: Actions granted on every object in the bucket (``arn:aws:s3:::bucket/*``).
OBJECT_ACTIONS: tuple[str, ...] = (
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
)

HARBOR_ACTIONS: tuple[str, ...] = tuple(sorted(BUCKET_ACTIONS + OBJECT_ACTIONS))


def policy_document(bucket: str, *, partition: str = "aws") -> dict:
    """The IAM policy document for ``bucket``, as a plain dict.

    Example: ``json.dumps(policy_document("harbor-chi"))``
    """
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "HarborBucket",
                "Effect": "Allow",
                "Action": list(BUCKET_ACTIONS),
                "Resource": [bucket_arn],
            },
            {
                "Sid": "HarborObjects",
                "Effect": "Allow",
                "Action": list(OBJECT_ACTIONS),
                "Resource": [f"{bucket_arn}/*"],
            },
        ],
    }


def policy_json(bucket: str, *, partition: str = "aws") -> str:
    """``policy_document`` serialised the same way every time (sorted keys, indented)."""
    return json.dumps(policy_document(bucket, partition=partition), indent=2, sort_keys=True)
