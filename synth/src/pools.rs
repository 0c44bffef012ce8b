//! Word lists the generators draw from: real administrative divisions, common names, ICAO state codes.

/// A county-level division with a real six-digit code: the first six digits of its residents' ID numbers.
pub(crate) struct Region {
    pub code: &'static str,
    /// Empty for the four municipalities (their addresses start with the city).
    pub province: &'static str,
    pub city: &'static str,
    pub district: &'static str,
}

const fn region(code: &'static str, province: &'static str, city: &'static str, district: &'static str) -> Region {
    Region { code, province, city, district }
}

pub(crate) const REGIONS: &[Region] = &[
    region("110101", "", "北京市", "东城区"),
    region("110105", "", "北京市", "朝阳区"),
    region("110108", "", "北京市", "海淀区"),
    region("120101", "", "天津市", "和平区"),
    region("310104", "", "上海市", "徐汇区"),
    region("310115", "", "上海市", "浦东新区"),
    region("500103", "", "重庆市", "渝中区"),
    region("440305", "广东省", "深圳市", "南山区"),
    region("440106", "广东省", "广州市", "天河区"),
    region("330106", "浙江省", "杭州市", "西湖区"),
    region("320102", "江苏省", "南京市", "玄武区"),
    region("320508", "江苏省", "苏州市", "姑苏区"),
    region("510107", "四川省", "成都市", "武侯区"),
    region("420106", "湖北省", "武汉市", "武昌区"),
    region("610113", "陕西省", "西安市", "雁塔区"),
    region("430104", "湖南省", "长沙市", "岳麓区"),
    region("370202", "山东省", "青岛市", "市南区"),
    region("210102", "辽宁省", "沈阳市", "和平区"),
    region("350203", "福建省", "厦门市", "思明区"),
    region("530102", "云南省", "昆明市", "五华区"),
    region("230103", "黑龙江省", "哈尔滨市", "南岗区"),
    region("340104", "安徽省", "合肥市", "蜀山区"),
    region("410105", "河南省", "郑州市", "金水区"),
];

impl Region {
    /// `广东省深圳市南山区` / `北京市东城区`.
    pub fn address_prefix(&self) -> String {
        format!("{}{}{}", self.province, self.city, self.district)
    }

    /// The district's police bureau as printed on the ID card back: `北京市公安局东城分局`.
    pub fn authority(&self) -> String {
        // 浦东新区 → 浦东分局.
        let district = self.district.strip_suffix("新区").or_else(|| self.district.strip_suffix('区'));
        let district = district.unwrap_or(self.district);
        format!("{}公安局{}分局", self.city, district)
    }
}

pub(crate) const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于",
    "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆",
    "汪", "范", "金", "石", "廖", "贾", "夏", "韦", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "段",
    "雷", "侯", "龙", "史", "陶", "黎", "贺", "顾", "毛", "郝", "龚", "邵", "万", "钱", "严", "武", "戴", "莫", "孔",
    "欧阳", "司马", "诸葛", "上官",
];

pub(crate) const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波", "斌", "宇",
    "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "阳", "建", "国", "志", "文", "海", "东", "亮", "博",
    "子", "晨", "峰", "成", "振", "家", "天", "佳", "一", "泽", "昊", "然", "思", "远",
];

pub(crate) const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "秀", "英", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "桂", "兰", "萍", "红", "梅", "琳", "雪",
    "婷", "慧", "莉", "倩", "颖", "琴", "晶", "欣", "悦", "妍", "佳", "怡", "雨", "涵", "梦", "诗", "思", "晓", "月",
    "子", "一", "嘉", "雅", "若", "清", "文", "小",
];

/// Surname and given name syllables in pinyin, for bank-card holder names.
pub(crate) const PINYIN_SURNAMES: &[&str] = &[
    "WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU", "XU", "SUN", "MA", "ZHU", "HU", "GUO",
    "HE", "GAO", "LIN", "LUO", "ZHENG", "LIANG", "XIE", "SONG", "TANG", "HAN", "FENG", "DENG", "CAO",
];

pub(crate) const PINYIN_GIVEN: &[&str] = &[
    "WEI", "FANG", "NA", "XIUYING", "MIN", "JING", "LEI", "QIANG", "JUN", "YANG", "YONG", "YAN", "JIE", "TAO", "MING",
    "CHAO", "XIAOMING", "HUA", "LING", "HAO", "YU", "XIN", "BO", "TING", "SAN", "JIANGUO", "ZIHAN", "YUTONG",
];

pub(crate) const LATIN_SURNAMES: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "MILLER",
    "GARCIA",
    "MARTIN",
    "DUBOIS",
    "BERNARD",
    "ROSSI",
    "RUSSO",
    "MUELLER",
    "SCHMIDT",
    "SCHNEIDER",
    "FISCHER",
    "WEBER",
    "ERIKSSON",
    "LARSSON",
    "NIELSEN",
    "JANSEN",
    "DE JONG",
    "VAN DER BERG",
    "NOWAK",
    "KOWALSKI",
    "NGUYEN",
    "TAN",
    "LIM",
    "WONG",
    "CHEN",
    "WANG",
    "LI",
    "ZHANG",
    "KIM",
    "PARK",
    "SATO",
    "SUZUKI",
    "TANAKA",
    "OBRIEN",
    "MURPHY",
    "WILSON",
    "TAYLOR",
    "ANDERSON",
    "THOMPSON",
    "MARTINEZ",
    "LOPEZ",
    "GONZALEZ",
    "FERNANDEZ",
    "SILVA",
    "SANTOS",
    "PETROV",
    "IVANOVA",
];

pub(crate) const LATIN_GIVEN_MALE: &[&str] = &[
    "JOHN",
    "JAMES",
    "PETER",
    "MICHAEL",
    "DAVID",
    "THOMAS",
    "PAUL",
    "MARK",
    "LUCAS",
    "MATTEO",
    "PIERRE",
    "JAN",
    "LARS",
    "HANS",
    "KARL",
    "ANDREW",
    "DANIEL",
    "WEI",
    "MING",
    "HAO",
    "KENJI",
    "MINHO",
    "CARLOS",
    "JOSE",
    "ALEXANDER",
    "SEBASTIAN",
    "NOAH",
    "OLIVER",
];

pub(crate) const LATIN_GIVEN_FEMALE: &[&str] = &[
    "ANNA",
    "MARIA",
    "MARY",
    "ELIZABETH",
    "SARAH",
    "EMMA",
    "SOPHIE",
    "CHLOE",
    "GIULIA",
    "CLAIRE",
    "INGRID",
    "EVA",
    "LAURA",
    "JULIA",
    "HANNAH",
    "LINDA",
    "MEI",
    "XIAO",
    "YUKI",
    "JIWOO",
    "ISABEL",
    "CARMEN",
    "OLIVIA",
    "CHARLOTTE",
    "AMELIA",
    "GRACE",
];

/// ICAO 9303 issuing state codes (fillers removed) with the name printed on the document.
pub(crate) const STATES: &[(&str, &str)] = &[
    ("UTO", "UTOPIA"),
    ("D", "BUNDESREPUBLIK DEUTSCHLAND"),
    ("FRA", "REPUBLIQUE FRANCAISE"),
    ("GBR", "UNITED KINGDOM"),
    ("CHN", "PEOPLE'S REPUBLIC OF CHINA"),
    ("SGP", "REPUBLIC OF SINGAPORE"),
    ("NLD", "KINGDOM OF THE NETHERLANDS"),
    ("ITA", "REPUBBLICA ITALIANA"),
    ("CAN", "CANADA"),
    ("AUS", "AUSTRALIA"),
    ("USA", "UNITED STATES OF AMERICA"),
    ("JPN", "JAPAN"),
    ("KOR", "REPUBLIC OF KOREA"),
    ("ESP", "REINO DE ESPANA"),
    ("SWE", "SVERIGE"),
    ("CHE", "SWITZERLAND"),
    ("BEL", "BELGIQUE"),
    ("AUT", "REPUBLIK OSTERREICH"),
    ("NZL", "NEW ZEALAND"),
    ("IRL", "IRELAND"),
];

pub(crate) const PLACES_OF_BIRTH: &[&str] = &[
    "ZENITH",
    "BERLIN",
    "PARIS",
    "LONDON",
    "BEIJING",
    "SHANGHAI",
    "SINGAPORE",
    "AMSTERDAM",
    "ROMA",
    "TORONTO",
    "SYDNEY",
    "NEW YORK",
    "TOKYO",
    "SEOUL",
    "MADRID",
    "STOCKHOLM",
    "ZURICH",
    "BRUSSELS",
    "WIEN",
    "DUBLIN",
];

pub(crate) const STREETS: &[&str] = &[
    "人民路",
    "中山路",
    "解放路",
    "建设路",
    "和平路",
    "新华路",
    "长江路",
    "文化路",
    "胜利街",
    "花园路",
    "青年路",
    "光明街",
    "幸福路",
    "朝阳路",
    "东风路",
    "友谊路",
    "景山前街",
    "学院路",
    "南京路",
    "黄河路",
    "滨江大道",
    "科技园路",
    "西湖大道",
    "迎宾路",
    "民主街",
    "振兴路",
    "复兴路",
    "青松路",
];

pub(crate) const EN_MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_real_shaped_codes() {
        assert!(REGIONS.len() >= 15);
        for r in REGIONS {
            assert_eq!(r.code.len(), 6);
            assert!(r.code.bytes().all(|b| b.is_ascii_digit()));
            assert!(r.authority().contains("公安局"));
        }
        assert_eq!(REGIONS[0].authority(), "北京市公安局东城分局");
        assert_eq!(REGIONS[7].address_prefix(), "广东省深圳市南山区");
    }
}
