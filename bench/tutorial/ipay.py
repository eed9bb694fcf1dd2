# The original tutorial's `ipay.py` ("IPay Mpesa STK Push API using Python", Section, 2022),
# copied as the tutorial gives it. The peer in `bench/payments.py`; not part of the bot.
#
# What changed, and only this (each line marked "bench:"):
# - the iPay URLs take their base from TUTORIAL_IPAY_BASE_URL (the sandbox), not apis.ipayafrica.com;
# - the vendor id and key are iPay's demo ones, as the tutorial has them: unchanged;
# - four slips that stop the tutorial's code from running at all are mended the least way:
#   `prepare_stk_data` names its parameters as its body reads them, `send_stk` reads `status`
#   from the reply (its `init_stk` returns `data`, which has none), and `iPayQueryTransaction`,
#   used and never defined, is the search URL;
# - `cbk` is empty: the tutorial's request bin is on the internet, and the tutorial never reads it.
import requests
import hmac
import hashlib
import json
import os  # bench:

iPayBase = os.environ.get("TUTORIAL_IPAY_BASE_URL", "https://apis.ipayafrica.com/payments/v2")  # bench:

#Needed to initate the payment request
iPayTransact = iPayBase + "/transact"  # bench: was "https://apis.ipayafrica.com/payments/v2/transact"

#Triggers the SIM ToolKit for authorization of payment on the user's handset.
iPayMpesa = iPayBase + "/transact/push/mpesa"  # bench: base URL
iPayAirtel = iPayBase + "/transact/push/airtel"  # bench: base URL
iPayQueryTransaction = iPayBase + "/transaction/search"  # bench: used below, never defined

iPayKey = "SECretKey"  #use "demoCHANGED" for testing where vid is set to "demo"

#Vendor ID
iPayVid = "demo"  #Production Vendor ID will be provided once they have set up your Merchant account
iPaySecret = b"demoCHANGED"


def prepare_stk_data(order_id, amount, customer_phone, customer_email, customer_notifications=0):  # bench: names
    iPayData = {
        "live": 0,
        "oid": order_id,
        "inv": order_id,
        "amount": amount,
        "tel": customer_phone,
        "eml": customer_email,
        "vid": iPayVid,
        "curr": "KES",
        "p1": "YOUR-CUSTOM-PARAMETER",
        "p2": "YOUR-CUSTOM-PARAMETER",
        "p3": "YOUR-CUSTOM-PARAMETER",
        "p4": "YOUR-CUSTOM-PARAMETER",
        "cbk": "",  # bench: was "https://enktpf6b4e4rm.x.pipedream.net"
        "cst": customer_notifications,
        "crl": 0,
        "autopay": 1
    }
    # The hash digital signature hash of the data for verification.
    hashCode = f"{iPayData['live']}{iPayData['oid']}{iPayData['inv']}{iPayData['amount']}{iPayData['tel']}{iPayData['eml']}{iPayData['vid']}{iPayData['curr']}{iPayData['p1']}{iPayData['p2']}{iPayData['p3']}{iPayData['p4']}{iPayData['cst']}{iPayData['cbk']}"
    h = hmac.new(iPaySecret, bytes(hashCode, 'utf-8'), hashlib.sha256)
    hash = h.hexdigest()
    iPayData["hash"] = hash
    return iPayData


def init_stk(order_id, customer_tel, customer_email, amount, send_receipt=0):
    data = prepare_stk_data(order_id, amount, customer_tel,
                            customer_email, customer_notifications=send_receipt)
    response = requests.post(iPayTransact, headers={
                             "Content-Type": "application/json; "}, data=json.dumps(data))
    response = response.json()
    # print(response)
    response['data']['vid'] = data["vid"]
    response['data']['tel'] = customer_tel
    response['data']['email'] = customer_email
    response['data']['status'] = response['status']  # bench: `send_stk` reads it from `data`
    return response['data']


def send_stk(order_id, customer_telephone, customer_email, amount):
    stk_data = init_stk(order_id, customer_telephone, customer_email, amount)

    if stk_data['status'] == 1:
        vid = stk_data['vid']
        sid = stk_data['sid']
        
        hashCode = f"{customer_telephone}{vid}{sid}"
        h = hmac.new(iPaySecret, bytes(hashCode, 'utf-8'), hashlib.sha256)
        hash = h.hexdigest()
        data = {
            "phone": customer_telephone,
            "vid": vid,
            "sid": sid,
            "hash": hash
        }
        response = requests.post(iPayMpesa, headers={
                                "Content-Type": "application/json; "}, data=json.dumps(data))
        response = response.json()

        if response['status'] == 1:
            return (True, "Successfully sent to the client", order_id)
        else:
            return (False, "An error occurred ")
        
    else:
        return (False, "An error occured while initiating request")


def check_transaction(order_id, vid):
    hashCode = f"{order_id}{vid}"
    h = hmac.new(iPaySecret, bytes(hashCode, 'utf-8'), hashlib.sha256)
    hash = h.hexdigest()
    data = {
        "oid": order_id,
        "vid": vid,
        "hash": hash
    }
    response = requests.post(iPayQueryTransaction, headers={
                             "Content-Type": "application/json; "}, data=json.dumps(data))
    response = response.json()
    print(response)
    if response['status'] == 1:
        return (True, response['data'])
    else:
        return (False, "Transaction not found or something went wrong")
