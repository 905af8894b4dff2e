"""Template filters for sizes and shares on the storage pages."""

from django import template

register = template.Library()


@register.filter
def bytes_human(value: int) -> str:
    size = float(value or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


@register.filter
def percent(value: float) -> str:
    return f"{(value or 0) * 100:.1f}%"


@register.filter
def percent_number(value: float) -> str:
    return f"{(value or 0) * 100:.1f}"
