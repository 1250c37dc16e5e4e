import ParleyCore

/// Why the platform API refuses a call: an HTTP status and the JSON error
/// body it answers with (openapi/platform.yaml, `Error`).
public struct PlatformFault: Error, Equatable, Sendable {
    public enum Code: String, Sendable {
        case unauthorized, invalidBody = "invalid_body", invalidField = "invalid_field", unknownTemplate = "unknown_template"
        case notFound = "not_found", methodNotAllowed = "method_not_allowed", unavailable, `internal`
    }

    public var status: Int
    public var code: Code
    public var message: String
    /// The field at fault, as a path: `to[2]`, `params.order`.
    public var field: String?

    public static func field(_ field: String, _ message: String, code: Code = .invalidField) -> PlatformFault {
        PlatformFault(status: 400, code: code, message: message, field: field)
    }
}

/// The region's notice templates (`ext.templates` in its region file): each
/// `{name}` in a template is replaced by the caller's `params.name`.
public struct NoticeTemplates: Sendable {
    public let templates: [String: String]

    public init(_ templates: [String: String]) {
        self.templates = templates
    }

    /// A notice's text: `text` as given, or `template` rendered with `params`.
    /// Exactly one of the two; the fault names the field.
    public func content(text: String?, template: String?, params: [String: String]) throws(PlatformFault) -> String {
        switch (text, template) {
        case (let text?, nil):
            guard !text.isEmpty else { throw .field("text", "text is empty") }
            return text
        case (nil, let name?):
            guard let template = templates[name] else {
                throw .field("template", "no template \"\(name)\" in this region", code: .unknownTemplate)
            }
            return try Self.render(template, params)
        case (nil, nil):
            throw .field("text", "give text or template")
        case (.some, .some):
            throw .field("template", "give text or template, not both")
        }
    }

    /// Replaces each `{name}` (`name` of `[A-Za-z0-9_]`); other braces stay as they are.
    static func render(_ template: String, _ params: [String: String]) throws(PlatformFault) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let after = rest[rest.index(after: open)...]
            if let close = after.firstIndex(of: "}"), !after[..<close].isEmpty,
               after[..<close].allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) {
                let name = String(after[..<close])
                guard let value = params[name] else { throw .field("params.\(name)", "the template needs params.\(name)") }
                out += value
                rest = after[after.index(after: close)...]
            } else {
                out += "{"
                rest = after
            }
        }
        out += rest
        return out
    }
}

/// The platform's rules for the ids a caller chooses.
public enum PlatformIDs {
    /// `notice_id` and `broadcast_id`: 1 to 48 of `[A-Za-z0-9_.-]`, so that a
    /// notice's client message id (`n/<notice_id>/<user>`) fits its 128 bytes.
    public static func isValid(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 48 && id.utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A)
                || (byte >= 0x30 && byte <= 0x39) || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }

    /// The client message id of notice `noticeID` to `userID`: a retry of the
    /// same notice to the same user is the same send, stored once.
    public static func noticeMessageID(_ noticeID: String, to userID: String) -> String { "n/\(noticeID)/\(userID)" }

    /// The client message id of broadcast `broadcastID` to `userID`: a batch
    /// posted again after an interruption reaches nobody twice.
    public static func broadcastMessageID(_ broadcastID: String, to userID: String) -> String { "b/\(broadcastID)/\(userID)" }
}
