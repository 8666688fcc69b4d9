from . import espprov_constants_pb2 as _espprov_constants_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WiFiCtrlMsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TypeCtrlReserved: _ClassVar[WiFiCtrlMsgType]
    TypeCmdCtrlReset: _ClassVar[WiFiCtrlMsgType]
    TypeRespCtrlReset: _ClassVar[WiFiCtrlMsgType]
    TypeCmdCtrlReprov: _ClassVar[WiFiCtrlMsgType]
    TypeRespCtrlReprov: _ClassVar[WiFiCtrlMsgType]
TypeCtrlReserved: WiFiCtrlMsgType
TypeCmdCtrlReset: WiFiCtrlMsgType
TypeRespCtrlReset: WiFiCtrlMsgType
TypeCmdCtrlReprov: WiFiCtrlMsgType
TypeRespCtrlReprov: WiFiCtrlMsgType

class CmdCtrlReset(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespCtrlReset(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CmdCtrlReprov(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespCtrlReprov(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WiFiCtrlPayload(_message.Message):
    __slots__ = ("msg", "status", "cmd_ctrl_reset", "resp_ctrl_reset", "cmd_ctrl_reprov", "resp_ctrl_reprov")
    MSG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CMD_CTRL_RESET_FIELD_NUMBER: _ClassVar[int]
    RESP_CTRL_RESET_FIELD_NUMBER: _ClassVar[int]
    CMD_CTRL_REPROV_FIELD_NUMBER: _ClassVar[int]
    RESP_CTRL_REPROV_FIELD_NUMBER: _ClassVar[int]
    msg: WiFiCtrlMsgType
    status: _espprov_constants_pb2.Status
    cmd_ctrl_reset: CmdCtrlReset
    resp_ctrl_reset: RespCtrlReset
    cmd_ctrl_reprov: CmdCtrlReprov
    resp_ctrl_reprov: RespCtrlReprov
    def __init__(self, msg: _Optional[_Union[WiFiCtrlMsgType, str]] = ..., status: _Optional[_Union[_espprov_constants_pb2.Status, str]] = ..., cmd_ctrl_reset: _Optional[_Union[CmdCtrlReset, _Mapping]] = ..., resp_ctrl_reset: _Optional[_Union[RespCtrlReset, _Mapping]] = ..., cmd_ctrl_reprov: _Optional[_Union[CmdCtrlReprov, _Mapping]] = ..., resp_ctrl_reprov: _Optional[_Union[RespCtrlReprov, _Mapping]] = ...) -> None: ...
