"""S3 event notifications -> the mask objects to decode.

An S3 notification holds `Records`, each with `eventName` ("ObjectCreated:Put", ...), `s3.bucket.name` and
`s3.object.key`, the key URL-encoded as in a form (a space arrives as "+"): unquote_plus gives the real key.
"""
from urllib.parse import unquote_plus

MASK_SUFFIX = ".png"
RESULT_SUFFIX = ".decoded.json"  # does not end in .png: the Lambda's own writes never trigger it
SIDECAR_SUFFIX = ".json"


def result_key(mask_key):
    return mask_key[:-len(MASK_SUFFIX)] + RESULT_SUFFIX


def sidecar_key(mask_key):
    """The `.json` the segmenter writes before the mask (labels, road classes, stream and timestamps)."""
    return mask_key[:-len(MASK_SUFFIX)] + SIDECAR_SUFFIX


def mask_records(event):
    """(masks, skipped, errors): masks [(bucket, key)] to decode; skipped [{"key", "reason"}] records that are not
    new masks; errors [{"record", "error"}] records that cannot be read."""
    masks, skipped, errors = [], [], []
    records = event.get("Records") if isinstance(event, dict) else None
    if records is None:
        return masks, skipped, [{"record": None, "error": "the event has no Records list (not an S3 notification)"}]
    if not isinstance(records, list):
        return masks, skipped, [{"record": None, "error": "Records: expected a list, got {}".format(type(records).__name__)}]
    for number, record in enumerate(records):
        try:
            name = record.get("eventName", "")
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
        except (AttributeError, KeyError, TypeError):
            errors.append({"record": number, "error": "record {}: expected s3.bucket.name and s3.object.key".format(number)})
            continue
        if not (isinstance(bucket, str) and bucket and key):
            errors.append({"record": number, "error": "record {}: empty bucket name or key".format(number)})
        elif not str(name).startswith("ObjectCreated:"):
            skipped.append({"bucket": bucket, "key": key, "reason": "event {} (not ObjectCreated)".format(name)})
        elif not key.endswith(MASK_SUFFIX):
            skipped.append({"bucket": bucket, "key": key, "reason": "not a {} mask".format(MASK_SUFFIX)})
        else:
            masks.append((bucket, key))
    return masks, skipped, errors
