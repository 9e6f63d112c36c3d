"""`{{ seconds|duration }}`: a length of time as a person reads it (45.9 s, 12 min 5 s, 3 h 20 min)."""

from django import template

register = template.Library()


@register.filter
def duration(seconds):
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
