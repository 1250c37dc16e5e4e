import Logging
import NIOCore
import PostgresNIO

/// The store's only way to PostgreSQL: every query checks, on the
/// connection's own event loop, that the connection is still open.
///
/// postgres-nio 1.33 waits for ever on a query written to a connection that
/// has already closed: once NIO has taken the connection's handlers away,
/// the write is dropped and nobody fails the query. PostgreSQL killed while a
/// transaction sat between two of its queries stopped sync's applier for
/// good (the kill-postgres drill never converged). Running the work on the
/// connection's event loop makes the check and the write one step the close
/// cannot come between. See docs/ARCHITECTURE.md, "Dead connections".
struct Database: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// Leases a connection for `body`, which runs on the connection's event loop.
    func withConnection<Result: Sendable>(_ body: (DatabaseConnection) async throws -> Result) async throws -> Result {
        try await client.withConnection { connection in
            try await withTaskExecutorPreference(EventLoopExecutor(connection.eventLoop)) {
                try await body(DatabaseConnection(raw: connection))
            }
        }
    }

    /// `body` inside BEGIN and COMMIT on a leased connection; ROLLBACK when
    /// it throws, and its error reaches the caller as itself.
    func withTransaction<Result: Sendable>(_ body: (DatabaseConnection) async throws -> Result) async throws -> Result {
        try await withConnection { connection in try await inTransaction(on: connection, body) }
    }

    /// `body` inside BEGIN and COMMIT on a connection already leased.
    func inTransaction<Result: Sendable>(
        on connection: DatabaseConnection, _ body: (DatabaseConnection) async throws -> Result
    ) async throws -> Result {
        try await connection.query("BEGIN", logger: logger)
        let result: Result
        do {
            result = try await body(connection)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        try await connection.query("COMMIT", logger: logger)
        return result
    }

    /// One query on a leased connection; its rows are read before the lease ends.
    @discardableResult
    func query(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        try await withConnection { connection in
            CollectedRows(rows: try await connection.query(query, logger: logger).collect())
        }
    }
}

/// A leased connection whose queries fail at once, rather than wait for
/// ever, when it has closed.
struct DatabaseConnection: Sendable {
    let raw: PostgresConnection

    @discardableResult
    func query(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        try checkOpen()
        return try await raw.query(query, logger: logger, file: file, line: line)
    }

    func execute<Statement: PostgresPreparedStatement, Row>(
        _ statement: Statement, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, Row> where Row == Statement.Row {
        try checkOpen()
        return try await raw.execute(statement, logger: logger, file: file, line: line)
    }

    @_disfavoredOverload
    @discardableResult
    func execute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> String where Statement.Row == () {
        try checkOpen()
        return try await raw.execute(statement, logger: logger, file: file, line: line)
    }

    /// LISTEN is safe as it is: postgres-nio fails it when its write fails.
    func listen<Value>(on channel: String, consume: (PostgresNotificationSequence) async throws -> Value) async throws -> Value {
        try await raw.listen(on: channel, consume: consume)
    }

    private func checkOpen() throws {
        guard !raw.isClosed else { throw StoreError(.connectionClosed, "the PostgreSQL connection closed") }
    }
}

/// Rows read to the end, iterated and decoded like postgres-nio's row sequence.
struct CollectedRows: AsyncSequence, Sendable {
    typealias Element = PostgresRow
    let rows: [PostgresRow]

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[PostgresRow]>
        mutating func next() async throws -> PostgresRow? { base.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }
    func collect() async throws -> [PostgresRow] { rows }
}

/// Runs a task's jobs on one NIO event loop.
final class EventLoopExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
