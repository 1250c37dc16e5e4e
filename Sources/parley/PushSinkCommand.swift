import ArgumentParser
import Foundation
import ParleyCore
import ParleyTools

/// `parley push-sink`: a push gateway that delivers nothing and prints each
/// notification it accepts, for the demo and for trying ext by hand.
struct PushSinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push-sink", abstract: "A push gateway that checks signatures and prints the notifications ext sends it."
    )

    @Option(help: "Address to serve POST /push on.")
    var listen = "127.0.0.1:7160"

    @Option(help: "The shared secret (default: the PARLEY_PUSH_SECRET environment variable).")
    var secret: String?

    @Option(help: "Answer the first N calls with 503, as a gateway that is down would.")
    var failFirst = 0

    func run() async throws {
        guard let secret = secret ?? ProcessInfo.processInfo.environment["PARLEY_PUSH_SECRET"] else {
            throw ValidationError("--secret or PARLEY_PUSH_SECRET is required")
        }
        let endpoint = try Endpoint(listen)
        let sink = PushSink(secret: secret)
        sink.failNext(failFirst)
        try await sink.run(host: endpoint.host, port: endpoint.port, stopsOnSignals: true, ready: { emit("push sink listening on \(endpoint)") }) { note in
            emit("push \(note.notificationID) to \(note.userID)/\(note.deviceID): \(note.messages) message(s), latest from \(note.latest.sender) in \(note.latest.conversationID): \(note.latest.preview)")
        }
    }
}

/// One line to standard output at once, unbuffered: it reaches a log file as it happens.
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
