"""Generated code of the cmr.v1 gRPC/protobuf contracts (sources: protos/cmr/v1/*.proto).

Do not edit the *_pb2* modules: change the .proto files and run `make protos`.
"""
