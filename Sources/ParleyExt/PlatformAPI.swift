import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime
import ParleyCore
import ParleyPlatformAPI
import ParleyStore

/// The platform API's operations (openapi/platform.yaml; the protocol and
/// types are generated into ParleyPlatformAPI by ops/gen-openapi).
struct PlatformAPI: APIProtocol {
    let region: String
    let templates: NoticeTemplates
    let poster: NoticePoster
    let store: RegionStore
    let broadcasts: BroadcastRunner
    let logger: Logger

    /// Users one notice call may name.
    static let maxRecipients = 1_000

    func postNotice(_ input: Operations.PostNotice.Input) async throws -> Operations.PostNotice.Output {
        let request: Components.Schemas.NoticeRequest
        switch input.body { case .json(let body): request = body }
        let service = try PlatformCaller.service
        do {
            guard PlatformIDs.isValid(request.noticeId) else {
                throw PlatformFault.field("notice_id", "notice_id must be 1 to 48 of [A-Za-z0-9_.-]")
            }
            guard (1...Self.maxRecipients).contains(request.to.count) else {
                throw PlatformFault.field("to", "to must name 1 to \(Self.maxRecipients) users")
            }
            let body = try templates.content(text: request.text, template: request.template, params: request.params?.additionalProperties ?? [:])
            let valid = request.to.filter(Naming.isValid)
            let outcomes = await poster.post(service: service, body: body, to: valid) {
                PlatformIDs.noticeMessageID(request.noticeId, to: $0)
            }
            var byUser: [String: NoticePoster.Outcome] = [:]
            for (user, outcome) in zip(valid, outcomes) { byUser[user] = outcome }
            var posted = 0
            var results: [Components.Schemas.NoticeResult] = []
            for user in request.to {
                guard let outcome = byUser[user] else {
                    results.append(.init(userId: user, status: .unknownUser, error: "not a user id"))
                    continue
                }
                switch outcome {
                case .posted(let id):
                    posted += 1
                    results.append(.init(userId: user, status: .posted, messageId: id))
                case .duplicate(let id):
                    results.append(.init(userId: user, status: .duplicate, messageId: id))
                case .refused(let error) where error.code == .unknownUser:
                    results.append(.init(userId: user, status: .unknownUser, error: error.message))
                case .refused(let error) where error.code == .payloadTooLarge || error.code == .invalidRequest:
                    // The body is the same for every user: the call is wrong, not this user.
                    throw PlatformFault.field(request.text == nil ? "template" : "text", error.message)
                case .refused(let error):
                    results.append(.init(userId: user, status: .failed, error: "\(error.code): \(error.message)"))
                case .failed(let reason):
                    results.append(.init(userId: user, status: .failed, error: reason))
                }
            }
            if !valid.isEmpty, outcomes.allSatisfy({ if case .failed = $0 { true } else { false } }) {
                throw PlatformFault(status: 503, code: .unavailable, message: "region \(region) cannot take notices now; retry with the same notice_id")
            }
            logger.info("notice posted", metadata: [
                "service": "\(service)", "notice_id": "\(request.noticeId)", "users": "\(request.to.count)", "posted": "\(posted)",
            ])
            return .ok(.init(body: .json(.init(noticeId: request.noticeId, posted: posted, results: results))))
        } catch let fault as PlatformFault {
            switch fault.status {
            case 503: return .serviceUnavailable(.init(body: .json(.init(fault))))
            default: return .badRequest(.init(body: .json(.init(fault))))
            }
        }
    }
}

extension PlatformAPI {
    func postBroadcast(_ input: Operations.PostBroadcast.Input) async throws -> Operations.PostBroadcast.Output {
        let request: Components.Schemas.BroadcastRequest
        switch input.body { case .json(let body): request = body }
        let service = try PlatformCaller.service
        do {
            guard PlatformIDs.isValid(request.broadcastId) else {
                throw PlatformFault.field("broadcast_id", "broadcast_id must be 1 to 48 of [A-Za-z0-9_.-]")
            }
            let body = try templates.content(text: request.text, template: request.template, params: request.params?.additionalProperties ?? [:])
            let scope: BroadcastRecord.Scope = switch request.scope { case .region: .region; case .all: .all }
            let created: Bool
            do {
                created = try await store.createBroadcast(service: service, broadcastID: request.broadcastId, scope: scope, body: body)
            } catch {
                logger.warning("cannot record a broadcast", metadata: ["error": "\(error)"])
                throw PlatformFault(status: 503, code: .unavailable, message: "region \(region) cannot record broadcasts now; retry with the same broadcast_id")
            }
            if created {
                broadcasts.wake()
                logger.info("broadcast recorded", metadata: [
                    "service": "\(service)", "broadcast_id": "\(request.broadcastId)", "scope": "\(scope.rawValue)",
                ])
            }
            return .accepted(.init(body: .json(.init(
                broadcastId: request.broadcastId, scope: .init(rawValue: scope.rawValue)!, region: region, duplicate: !created
            ))))
        } catch let fault as PlatformFault {
            switch fault.status {
            case 503: return .serviceUnavailable(.init(body: .json(.init(fault))))
            default: return .badRequest(.init(body: .json(.init(fault))))
            }
        }
    }

    func getBroadcast(_ input: Operations.GetBroadcast.Input) async throws -> Operations.GetBroadcast.Output {
        let service = try PlatformCaller.service
        let id = input.path.broadcastId
        let record: BroadcastRecord?
        do {
            record = try await store.broadcast(service: service, broadcastID: id)
        } catch {
            logger.warning("cannot read a broadcast", metadata: ["error": "\(error)"])
            return .serviceUnavailable(.init(body: .json(.init(PlatformFault(status: 503, code: .unavailable, message: "region \(region) cannot read broadcasts now")))))
        }
        guard let record else {
            return .notFound(.init(body: .json(.init(PlatformFault(
                status: 404, code: .notFound, message: "no broadcast \(id) of \(service) in region \(region)", field: "broadcast_id"
            )))))
        }
        return .ok(.init(body: .json(.init(
            broadcastId: record.broadcastID, scope: .init(rawValue: record.scope.rawValue)!, region: region, done: record.done,
            reached: Int(record.reached), failed: Int(record.failed)
        ))))
    }
}

/// The service the current request's token belongs to, set by `ServiceAuthentication`.
enum PlatformCaller {
    @TaskLocal static var authenticated: String?

    static var service: String {
        get throws {
            guard let service = authenticated else { throw PlatformFault(status: 401, code: .unauthorized, message: "no service token") }
            return service
        }
    }
}

extension Components.Schemas.PlatformError {
    init(_ fault: PlatformFault) {
        self.init(error: .init(code: .init(rawValue: fault.code.rawValue) ?? ._internal, message: fault.message, field: fault.field))
    }
}

extension PlatformFault {
    /// The fault as a raw HTTP answer, for the middlewares that answer before an operation does.
    var response: (HTTPResponse, HTTPBody?) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = (try? encoder.encode(Components.Schemas.PlatformError(self))) ?? Data()
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        if status == 401 { fields[.wwwAuthenticate] = "Bearer" }
        return (HTTPResponse(status: .init(code: status), headerFields: fields), HTTPBody(body))
    }
}

/// Answers 401 with a JSON body unless the request carries a known service
/// token (`Authorization: Bearer <token>`); for the others, names the
/// calling service for the operation.
struct ServiceAuthentication: ServerMiddleware {
    let tokens: ServiceTokens

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let header = request.headerFields[.authorization] else {
            return PlatformFault(status: 401, code: .unauthorized, message: "missing Authorization: Bearer <service token>").response
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", let service = tokens.service(for: String(parts[1])) else {
            return PlatformFault(status: 401, code: .unauthorized, message: "unknown service token").response
        }
        return try await PlatformCaller.$authenticated.withValue(service) { try await next(request, body, metadata) }
    }
}

/// Turns what the generated server throws into JSON error bodies: a body
/// that does not decode is a 400 naming the field at fault; anything else
/// is a 500 whose details stay in the log.
struct PlatformErrors: ServerMiddleware {
    let logger: Logger

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        do {
            return try await next(request, body, metadata)
        } catch let error as ServerError where error.operationInput == nil {
            // Before the operation ran: the request itself did not decode.
            if let decoding = error.underlyingError as? DecodingError { return Self.fault(decoding).response }
            return PlatformFault(status: 400, code: .invalidBody, message: error.causeDescription, field: "body").response
        } catch {
            logger.error("platform API operation failed", metadata: ["operation": "\(operationID)", "error": "\(error)"])
            return PlatformFault(status: 500, code: .internal, message: "internal error").response
        }
    }

    /// The field a decoding error is about, as a path (`to[2]`, `notice_id`).
    static func fault(_ error: DecodingError) -> PlatformFault {
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
            }
            return text.isEmpty ? "body" : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return PlatformFault(status: 400, code: .invalidBody, message: "\(path(context.codingPath + [key])) is required", field: path(context.codingPath + [key]))
        case .typeMismatch(let type, let context):
            return PlatformFault(status: 400, code: .invalidBody, message: "\(path(context.codingPath)) must be \(Self.name(of: type))", field: path(context.codingPath))
        case .valueNotFound(let type, let context):
            return PlatformFault(status: 400, code: .invalidBody, message: "\(path(context.codingPath)) must be \(Self.name(of: type)), not null", field: path(context.codingPath))
        case .dataCorrupted(let context):
            return PlatformFault(status: 400, code: .invalidBody, message: context.codingPath.isEmpty ? "the body is not JSON" : "\(path(context.codingPath)) is malformed", field: path(context.codingPath))
        @unknown default:
            return PlatformFault(status: 400, code: .invalidBody, message: "the body does not decode", field: "body")
        }
    }

    private static func name(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Bool.Type: "a boolean"
        default: type is any Collection.Type ? "an array" : "an object"
        }
    }
}
