import Foundation
import ParleyPlatformAPI
import Testing

@testable import ParleyExt

@Suite struct PlatformRulesTests {
    let templates = NoticeTemplates(["shipped": "Order {order} ships {eta}. {not a param} {}", "plain": "Hello"])

    @Test func aTemplateIsRenderedWithEveryParameterAndLeavesOtherBracesAlone() throws {
        let text = try templates.content(text: nil, template: "shipped", params: ["order": "A-17", "eta": "today", "unused": "x"])
        #expect(text == "Order A-17 ships today. {not a param} {}")
        #expect(try templates.content(text: nil, template: "plain", params: [:]) == "Hello")
        #expect(try templates.content(text: "as given {order}", template: nil, params: [:]) == "as given {order}")
    }

    @Test func everyContentFaultNamesItsField() {
        func fault(_ text: String?, _ template: String?, _ params: [String: String] = [:]) -> PlatformFault? {
            do { _ = try templates.content(text: text, template: template, params: params); return nil } catch { return error }
        }
        #expect(fault(nil, "shipped", ["order": "A-17"]) == .field("params.eta", "the template needs params.eta"))
        #expect(fault(nil, "nope")?.code == .unknownTemplate)
        #expect(fault(nil, "nope")?.field == "template")
        #expect(fault("", nil)?.field == "text")
        #expect(fault(nil, nil)?.field == "text")
        #expect(fault("x", "plain")?.field == "template")
    }

    @Test func serviceTokensNameTheirServiceAndNothingElse() throws {
        let tokens = try ServiceTokens(parsing: "orders=secret-1,support=secret-2")
        #expect(tokens.service(for: "secret-1") == "orders")
        #expect(tokens.service(for: "secret-2") == "support")
        #expect(tokens.service(for: "secret-") == nil)
        #expect(tokens.service(for: "") == nil)
        #expect(!tokens.isEmpty)
        #expect(throws: ServiceTokenError.self) { try ServiceTokens(parsing: "orders") }
        #expect(throws: ServiceTokenError.self) { try ServiceTokens(parsing: "orders=") }
        #expect(throws: ServiceTokenError.self) { try ServiceTokens(["bad name": "t"]) }
        #expect(throws: ServiceTokenError.self) { try ServiceTokens(["~orders": "t"]) }
    }

    @Test func noticeIDsAreShortAndPlainSoTheirMessageIDsFit() {
        #expect(PlatformIDs.isValid("order-17.shipped_2"))
        #expect(PlatformIDs.isValid(String(repeating: "a", count: 48)))
        #expect(!PlatformIDs.isValid(String(repeating: "a", count: 49)))
        #expect(!PlatformIDs.isValid(""))
        #expect(!PlatformIDs.isValid("a/b"))
        #expect(!PlatformIDs.isValid("é"))
        #expect(PlatformIDs.noticeMessageID("n1", to: "ann") == "n/n1/ann")
    }

    @Test func aBodyThatDoesNotDecodeNamesTheFieldAtFault() {
        func fault(_ json: String) -> PlatformFault? {
            do {
                _ = try JSONDecoder().decode(Components.Schemas.NoticeRequest.self, from: Data(json.utf8))
                return nil
            } catch let error as DecodingError {
                return PlatformErrors.fault(error)
            } catch {
                return nil
            }
        }
        #expect(fault(#"{"notice_id": "n1", "to": ["ann"], "text": "hi"}"#) == nil)
        #expect(fault(#"{"to": ["ann"], "text": "hi"}"#)?.field == "notice_id")
        #expect(fault(#"{"notice_id": "n1", "to": "ann"}"#)?.field == "to")
        #expect(fault(#"{"notice_id": "n1", "to": "ann"}"#)?.message == "to must be an array")
        #expect(fault(#"{"notice_id": "n1", "to": ["ann", 7]}"#)?.field == "to[1]")
        #expect(fault(#"{"notice_id": "n1", "to": ["ann"], "params": {"order": 5}}"#)?.field == "params.order")
        #expect(fault("not json")?.message == "the body is not JSON")
        #expect(fault("not json")?.status == 400)
    }
}
