from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RMakerConfigStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Success: _ClassVar[RMakerConfigStatus]
    InvalidParam: _ClassVar[RMakerConfigStatus]
    InvalidState: _ClassVar[RMakerConfigStatus]

class RMakerConfigMsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TypeCmdSetUserMapping: _ClassVar[RMakerConfigMsgType]
    TypeRespSetUserMapping: _ClassVar[RMakerConfigMsgType]
Success: RMakerConfigStatus
InvalidParam: RMakerConfigStatus
InvalidState: RMakerConfigStatus
TypeCmdSetUserMapping: RMakerConfigMsgType
TypeRespSetUserMapping: RMakerConfigMsgType

class CmdSetUserMapping(_message.Message):
    __slots__ = ("UserID", "SecretKey")
    USERID_FIELD_NUMBER: _ClassVar[int]
    SECRETKEY_FIELD_NUMBER: _ClassVar[int]
    UserID: str
    SecretKey: str
    def __init__(self, UserID: _Optional[str] = ..., SecretKey: _Optional[str] = ...) -> None: ...

class RespSetUserMapping(_message.Message):
    __slots__ = ("Status", "NodeId")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NODEID_FIELD_NUMBER: _ClassVar[int]
    Status: RMakerConfigStatus
    NodeId: str
    def __init__(self, Status: _Optional[_Union[RMakerConfigStatus, str]] = ..., NodeId: _Optional[str] = ...) -> None: ...

class RMakerConfigPayload(_message.Message):
    __slots__ = ("msg", "cmd_set_user_mapping", "resp_set_user_mapping")
    MSG_FIELD_NUMBER: _ClassVar[int]
    CMD_SET_USER_MAPPING_FIELD_NUMBER: _ClassVar[int]
    RESP_SET_USER_MAPPING_FIELD_NUMBER: _ClassVar[int]
    msg: RMakerConfigMsgType
    cmd_set_user_mapping: CmdSetUserMapping
    resp_set_user_mapping: RespSetUserMapping
    def __init__(self, msg: _Optional[_Union[RMakerConfigMsgType, str]] = ..., cmd_set_user_mapping: _Optional[_Union[CmdSetUserMapping, _Mapping]] = ..., resp_set_user_mapping: _Optional[_Union[RespSetUserMapping, _Mapping]] = ...) -> None: ...
