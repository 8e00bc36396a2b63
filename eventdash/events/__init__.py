from .model import EVENT_TYPES, Event
from .validation import InvalidEvent, InvalidReason, parse_event

__all__ = ["EVENT_TYPES", "Event", "InvalidEvent", "InvalidReason", "parse_event"]
