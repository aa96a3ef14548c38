"""Upload refusals as the upload page shows them: one sentence, the option named by its label, never its field.

The API keeps its "scale: ..." messages (clients read field names); people read "Scale: ...", and the page names
the file once, beside the sentence.
"""

from __future__ import annotations

from ml.operations import Operation
from studio.tasks.forms import sentence
from studio.tasks.uploads import SUPPORTED, UploadRejected

# Fields that are not options of an operation, by what the page calls them.
_OTHER_FIELDS = {"photo": "The photo", "options": "The options", "operation": "What to do",
                 "webhook_url": "Webhook URL", "image_url": "The photo's web address",
                 "bg_image_url": "The background picture's web address"}


def field_label(operation: Operation, field: str) -> str:
    """Return what the form calls a field: an option's label, an extra picture's title, or the name itself."""
    prop = operation.option_schema().get("properties", {}).get(field)
    if prop is not None and not prop.get("readOnly"):
        return str(prop.get("title", field))
    attachment = next((item for item in operation.attachments if item.name == field), None)
    if attachment is not None:
        return attachment.title
    return _OTHER_FIELDS.get(field, field)


def page_message(error: UploadRejected, operation: Operation) -> str:
    """Return a refusal as one sentence for the upload page ("Scale: the result could be ...")."""
    # The page says which formats it takes beside the drop zone: the API's reminder would be a second sentence.
    detail = error.detail.removesuffix(" " + SUPPORTED).strip()
    if error.field is None:
        return sentence(_field_named_by_label(detail))
    label = field_label(operation, error.field)
    joined = f"{label} {detail}" if detail.startswith(("must ", "is ")) else f"{label}: {detail}"
    return sentence(joined)


def _field_named_by_label(detail: str) -> str:
    """Return a message that starts with a web address field's name ("image_url must be ...") with its label."""
    for field in ("image_url", "bg_image_url"):
        for separator in (" ", ": "):
            if detail.startswith(field + separator):
                return _OTHER_FIELDS[field] + separator + detail.removeprefix(field + separator)
    return detail
