from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Success: _ClassVar[Status]
    InvalidSecScheme: _ClassVar[Status]
    InvalidProto: _ClassVar[Status]
    TooManySessions: _ClassVar[Status]
    InvalidArgument: _ClassVar[Status]
    InternalError: _ClassVar[Status]
    CryptoError: _ClassVar[Status]
    InvalidSession: _ClassVar[Status]
Success: Status
InvalidSecScheme: Status
InvalidProto: Status
TooManySessions: Status
InvalidArgument: Status
InternalError: Status
CryptoError: Status
InvalidSession: Status
