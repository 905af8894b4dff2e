"""Errors of the webrtc app, each with a stable code."""

from veza.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
)


class CallNotFound(NotFound):
    code = "call_not_found"
    default_message = "No such call."


class NotAParty(Forbidden):
    code = "not_a_party"
    default_message = "Only the two parties can send into a call."


class CallStateError(Conflict):
    code = "bad_call_state"
    default_message = "The call is not in a state that allows this."


class AlreadyInCall(Conflict):
    code = "already_in_call"
    default_message = "You are already in a call."


class DuplicateCall(Conflict):
    code = "duplicate_call"
    default_message = "A call with this call_id already exists."


class InvalidCallee(DomainError):
    code = "invalid_callee"
    default_message = "The callee is not a user that can be called."


class TooManyInvites(DomainError):
    status_code = 429
    code = "too_many_invites"
    default_message = "Too many calls in the last minute; try again later."


class BadMessage(DomainError):
    code = "bad_message"
    default_message = "The message is not a valid signaling message."


class PeerUnreachable(ServiceUnavailable):
    code = "peer_unreachable"
    default_message = "The other party is not keeping up; the message was dropped."
