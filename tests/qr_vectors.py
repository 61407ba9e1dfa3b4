"""Published EMVCo merchant-presented QR payloads, shared by the codec, rendering and CLI tests.

Sources:
  [emvco] EMV QRCPS Merchant-Presented Mode, Appendix A example payload ("BEST TRANSPORT",
          CRC A13A), as quoted by ericsalim/exemvi test/qr_mp_test.exs ("@official_sample").
  [bcb]   Banco Central do Brasil, "Manual de Padrões para Iniciação do Pix" (BR Code is
          EMVCo MPM): the static code example, CRC 1D3D; quoted by ACBr's Pix tests and
          the pix-payload README.
  [khqr]  phannaly/emv-qr-code README.md, "Merchant Presented Mode decode" example, CRC 1FF2.
"""

EMVCO_SAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京"
    "540523.7253031565502016233030412340603***0708A60086670902ME91320016A011223344"
    "9988770708123456786304A13A"
)
BCB_STATIC_SAMPLE = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)
KHQR_SAMPLE = (
    "00020101021252044131153137210116372101160123456789ABCDE6016Banteay Meanchey"
    "5913Kuntheas Shop5802KH540510.005303840621201081234567863041FF2"
)
