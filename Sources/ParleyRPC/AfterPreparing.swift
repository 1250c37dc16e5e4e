import ServiceLifecycle

/// Runs `services` once `prepare` has succeeded (a role serves nothing before
/// its schema is migrated), and ends when they all end.
public struct AfterPreparing: Service {
    let prepare: @Sendable () async throws -> Void
    let services: [any Service]

    public init(services: [any Service], prepare: @escaping @Sendable () async throws -> Void) {
        self.prepare = prepare
        self.services = services
    }

    public func run() async throws {
        try await prepare()
        try await withThrowingDiscardingTaskGroup { group in
            for service in services { group.addTask { try await service.run() } }
        }
    }
}
